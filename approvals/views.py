"""The pages an emailed approval link opens: look first, decide only by a POST from the confirmation page.

Mail scanners and link previews open every link they see, so opening one
changes nothing: `link` checks the token, moves it from the address into the
session (as Django's password reset does) and redirects to `decide`, which
shows the action with Approve and Reject buttons. Only submitting that form,
with its CSRF token, records a decision, through approvals.decisions.decide.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_safe

from approvals import decisions
from approvals.decisions import DecisionRefused, may_decide, read_link_token
from approvals.models import Approval, ApprovalStatus, Decision
from approvals.templatetags.approval_details import approval_details, person

SESSION_KEY = "approval_link"
VIA = "email link"
COMMENT_MAX_CHARS = 2000


class DecisionForm(forms.Form):
    """What the confirmation page posts: the pressed button, an optional comment, and which approval it showed."""

    approval = forms.IntegerField(widget=forms.HiddenInput)
    decision = forms.ChoiceField(choices=Decision.choices)
    comment = forms.CharField(required=False, max_length=COMMENT_MAX_CHARS, widget=forms.Textarea)


def private(referrer_policy: str):
    """Keep the view's responses out of caches, and set how much of their address a Referer may carry."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            response = view(request, *args, **kwargs)
            add_never_cache_headers(response)
            response["Referrer-Policy"] = referrer_policy
            return response

        return wrapped

    return decorate


def _problem(request: HttpRequest, title: str, message: str, *, status: int, hint: str = "") -> HttpResponse:
    context = {"title": title, "message": message, "hint": hint}
    return render(request, "approvals/problem.html", context, status=status)


def _link_refused(request: HttpRequest, refusal: DecisionRefused) -> HttpResponse:
    # A signature that never was ours is a bad request; a link that was good
    # once (expired, for an approval since escalated or gone) is gone.
    if refusal.forged:
        return _problem(
            request,
            "This link does not work",
            str(refusal),
            status=400,
            hint="Open the link from your email again; some mail programs break long links in two.",
        )
    return _problem(
        request,
        "This link no longer works",
        str(refusal),
        status=410,
        hint="If the approval is still open, decide it in Mailroom's admin, or ask for it to be sent again.",
    )


def _outcome(
    request: HttpRequest, approval: Approval, approver, *, message: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "approval": approval,
        "approver": approver,
        "details": approval_details(approval),
        "votes": approval.votes.select_related("voter"),
        "message": message,
        "refused": status != 200,
    }
    return render(request, "approvals/outcome.html", context, status=status)


def _confirmation(
    request: HttpRequest, approval: Approval, approver, form: DecisionForm, *, status: int = 200
) -> HttpResponse:
    context = {"approval": approval, "approver": approver, "details": approval_details(approval), "form": form}
    return render(request, "approvals/decide.html", context, status=status)


# The link's address holds the token: it must never leave in a Referer.
@private("no-referrer")
@require_safe
def link(request: HttpRequest, token: str) -> HttpResponse:
    """Check the emailed token, keep it in the session, and send the browser to the confirmation page."""
    try:
        read_link_token(token)
    except DecisionRefused as refusal:
        return _link_refused(request, refusal)
    request.session[SESSION_KEY] = token
    return redirect("approvals:decide")


# No secret in this address, and a form to post: "no-referrer" here would make
# browsers send "Origin: null" with the POST, which Django's CSRF check refuses.
# "same-origin" sends nothing to other sites.
@private("same-origin")
@require_http_methods(["GET", "HEAD", "POST"])
def decide(request: HttpRequest) -> HttpResponse:
    """Show the action with Approve and Reject buttons (GET), or record the pressed one (POST)."""
    token = request.session.get(SESSION_KEY)
    if not token:
        return _problem(
            request,
            "No approval link",
            "There is no approval to decide here yet.",
            status=400,
            hint="Open the link from your email; it brings you back to this page.",
        )
    try:
        approval, approver = read_link_token(token)
    except DecisionRefused as refusal:
        return _link_refused(request, refusal)
    if settings.APPROVAL_LINK_REQUIRES_LOGIN and not request.user.is_authenticated:
        # The session, and the token in it, survive the login.
        return redirect_to_login(request.get_full_path())
    if request.user.is_authenticated and request.user.pk != approver.pk:
        return _problem(
            request,
            f"This link is for {person(approver)}",
            f"You are logged in as {person(request.user)}, so you cannot decide with it.",
            status=403,
            hint="Use the link from your own email, or log out and log in as the person it was sent to.",
        )
    if not may_decide(approver, approval):
        return _problem(request, "Not yours to decide", "You may not decide this approval.", status=403)

    if request.method == "POST":
        return _record(request, approval, approver)
    if approval.status != ApprovalStatus.PENDING or approval.votes.filter(voter=approver).exists():
        return _outcome(request, approval, approver)
    return _confirmation(request, approval, approver, DecisionForm(initial={"approval": approval.pk}))


def _record(request: HttpRequest, approval: Approval, approver) -> HttpResponse:
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _confirmation(request, approval, approver, form, status=400)
    if form.cleaned_data["approval"] != approval.pk:
        # Another link was opened in this browser after the page was loaded:
        # the session now decides a different approval than the one shown.
        return _problem(
            request,
            "This page is out of date",
            "You opened another approval link since this page was loaded; nothing was decided.",
            status=409,
            hint="Open the link for this approval from your email again.",
        )
    try:
        approval = decisions.decide(
            approval, approver, form.cleaned_data["decision"], comment=form.cleaned_data["comment"].strip(), via=VIA
        )
    except DecisionRefused as refusal:
        return _outcome(request, Approval.objects.get(pk=approval.pk), approver, message=str(refusal), status=409)
    except PermissionDenied as denial:
        return _problem(request, "Not yours to decide", str(denial), status=403)
    return _outcome(request, approval, approver, message="Your decision is recorded.")
