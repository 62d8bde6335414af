"""URLs of the REST API, version 1."""

from django.urls import path

from actions.api.emails import InboundEmailView

app_name = "api"

urlpatterns = [
    path("emails/", InboundEmailView.as_view(), name="email-create"),
]
