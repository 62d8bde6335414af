"""Top-level URLs. The names here are part of Mailroom's stable interface (DESIGN.md)."""

from django.contrib import admin
from django.urls import path

admin.site.site_header = "Mailroom"
admin.site.site_title = "Mailroom"
admin.site.index_title = "Email turned into approved, audited work"

urlpatterns = [
    path("admin/", admin.site.urls),
]
