"""Top-level URLs. The names here are part of Mailroom's stable interface (DESIGN.md)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from integrations.views import health, healthz
from observability.views import metrics

admin.site.site_header = "Mailroom"
admin.site.site_title = "Mailroom"
admin.site.index_title = "Email turned into approved, audited work"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("approvals/", include("approvals.urls")),
    path("api/v1/", include("actions.api.urls")),
    # The OpenAPI 3 schema of /api/v1/, and the interactive page that reads it.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Sign-in for approvers following an emailed link; staff use the admin's.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("health/", health, name="health"),
    # For load balancers (answers without the database) and Prometheus (who may: observability/views.py).
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
]
