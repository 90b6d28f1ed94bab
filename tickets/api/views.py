"""/api/v1/tickets: list, show, open, reply and change the status of tickets.

Scopes: reading needs ``read``; opening, replying and changing the status need ``answer``
(the scope of keys that act in conversations). Tickets are scoped to the accounts the
request may act on (``kb.api.auth.request_account_ids``); another account's are 404.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from chat.models import Conversation
from kb.api.auth import request_api_key
from kb.api.views import AccountScopedApi, OperationsApi
from kb.models import Account, ApiKey
from tickets.api.serializers import TicketDetailSerializer, TicketEventSerializer, TicketSerializer
from tickets.models import Ticket, Urgency
from tickets.selectors.tickets import ticket_for_accounts, tickets_for_accounts
from tickets.services.tickets import (
    MAX_TEXT_CHARS,
    TicketRejected,
    ticket_open,
    ticket_open_from_conversation,
    ticket_reply_send,
    ticket_status_set,
)
from web.api_errors import ApplicationError
from web.api_schema import ERROR_HEADERS, error_responses

TAG = "tickets"


def _actor(request: Request) -> Any:
    """The person acting: the session's user; None for an API key (its account acts)."""
    return None if request_api_key(request) is not None else request.user


def _rejected(exc: TicketRejected) -> ApplicationError:
    return ApplicationError(str(exc), code="invalid_ticket")


class TicketScopedApi(AccountScopedApi):
    def ticket_get(self, ticket_id: int) -> Ticket:
        try:
            return ticket_for_accounts(account_ids=self.account_ids(), ticket_id=ticket_id)
        except Http404 as exc:
            raise NotFound("No such ticket.") from exc


class TicketListApi(TicketScopedApi):
    required_scope = ApiKey.Scope.READ

    class FilterSerializer(serializers.Serializer):
        queue = serializers.CharField(
            max_length=100, required=False,
            help_text='A queue\'s slug or id, or "unrouted" for tickets in no queue.',
        )  # fmt: skip
        status = serializers.ChoiceField(choices=Ticket.Status.choices, required=False)
        urgency = serializers.ChoiceField(choices=Urgency.choices, required=False)

    @extend_schema(
        operation_id="tickets_list",
        summary="List tickets, newest first",
        tags=[TAG],
        parameters=[FilterSerializer, *ERROR_HEADERS],
        responses={200: TicketSerializer(many=True), **error_responses(400)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        queue: Any = data.get("queue")
        if isinstance(queue, str) and queue.isascii() and queue.isdigit() and len(queue) <= 19:
            queue = int(queue)
        tickets = tickets_for_accounts(
            account_ids=self.account_ids(), queue=queue, status=data.get("status"),
            urgency=data.get("urgency"),
        )  # fmt: skip
        return self.paginated_response(tickets, TicketSerializer)


class TicketCreateApi(TicketScopedApi):
    required_scope = ApiKey.Scope.ANSWER

    class InputSerializer(serializers.Serializer):
        question = serializers.CharField(
            required=False, allow_blank=True, max_length=MAX_TEXT_CHARS,
            help_text="What the asker wants. Optional with conversation_id (default: its "
            "last question).",
        )  # fmt: skip
        subject = serializers.CharField(required=False, allow_blank=True, max_length=200)
        comment = serializers.CharField(required=False, allow_blank=True, max_length=4000)
        conversation_id = serializers.IntegerField(
            required=False, min_value=1,
            help_text="One of your conversations: the ticket carries its last question and "
            "Cairn's answer, and the reply is posted into it.",
        )  # fmt: skip
        account = serializers.SlugField(
            required=False, max_length=80,
            help_text="The account's slug; only for a session user of several accounts "
            "opening a ticket without a conversation.",
        )  # fmt: skip

    @extend_schema(
        operation_id="tickets_create",
        summary="Open a ticket: hand a question to a person",
        description="The ticket is classified, routed to a queue and its members notified "
        "in the background. Opening one again for the same conversation question returns "
        "the ticket already open.",
        tags=[TAG],
        request=InputSerializer,
        parameters=[
            *ERROR_HEADERS,
            OpenApiParameter(
                "Location",
                str,
                OpenApiParameter.HEADER,
                response=[201],
                description="The ticket's URL.",
            ),
        ],  # fmt: skip
        responses={201: TicketDetailSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        api_key = request_api_key(request)
        actor = _actor(request)
        try:
            if data.get("conversation_id"):
                ticket = ticket_open_from_conversation(
                    conversation=self._conversation(data["conversation_id"]), user=actor,
                    origin=Ticket.Origin.API, api_key=api_key, question=data.get("question", ""),
                    subject=data.get("subject", ""), comment=data.get("comment", ""),
                )  # fmt: skip
            else:
                if not data.get("question", "").strip():
                    raise serializers.ValidationError(
                        {"question": "Say what the asker wants (or give a conversation_id)."}
                    )
                ticket = ticket_open(
                    account=self._account(data.get("account")), origin=Ticket.Origin.API,
                    question=data["question"], asker=actor, api_key=api_key,
                    subject=data.get("subject", ""), comment=data.get("comment", ""),
                )  # fmt: skip
        except TicketRejected as exc:
            raise _rejected(exc) from exc
        body = TicketDetailSerializer(self.ticket_get(ticket.pk)).data
        location = reverse("api-ticket", kwargs={"ticket_id": ticket.pk})
        return Response(body, status.HTTP_201_CREATED, headers={"Location": location})

    def _conversation(self, conversation_id: int) -> Conversation:
        """One of the caller's conversations: an API key's account's API conversations, or
        the session user's own (as for /api/v1/answers)."""
        conversations = Conversation.objects.filter(account_id__in=self.account_ids())
        if request_api_key(self.request) is not None:
            conversations = conversations.filter(user__isnull=True)
        else:
            conversations = conversations.filter(user_id=int(self.request.user.pk or 0))
        conversation = conversations.select_related("account").filter(pk=conversation_id).first()
        if conversation is None:
            raise NotFound("No such conversation.")
        return conversation

    def _account(self, slug: str | None) -> Account:
        accounts = Account.objects.filter(pk__in=self.account_ids()).order_by("pk")
        if slug:
            account = accounts.filter(slug=slug).first()
            if account is None:
                raise NotFound(f"No account {slug!r}.")
            return account
        found = list(accounts[:2])
        if len(found) != 1:
            raise ApplicationError(
                "Say which account the ticket is for: account is required for a user of "
                "several accounts.",
                code="account_required",
            )
        return found[0]


class TicketsApi(OperationsApi, TicketListApi, TicketCreateApi):
    """``tickets``: GET lists, POST opens one."""


class TicketDetailApi(TicketScopedApi):
    required_scope = ApiKey.Scope.READ

    @extend_schema(
        operation_id="tickets_retrieve",
        summary="Get a ticket with its timeline",
        tags=[TAG],
        parameters=[*ERROR_HEADERS],
        responses={200: TicketDetailSerializer, **error_responses(404)},
    )
    def get(self, request: Request, ticket_id: int) -> Response:
        return Response(TicketDetailSerializer(self.ticket_get(ticket_id)).data)


class TicketReplyApi(TicketScopedApi):
    required_scope = ApiKey.Scope.ANSWER

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(max_length=MAX_TEXT_CHARS, help_text="The reply, as sent.")

    @extend_schema(
        operation_id="tickets_reply",
        summary="Reply to the asker (posted into their conversation)",
        description="The ticket then waits on the asker. The same body sent again within "
        "ten minutes returns the first reply instead of sending it twice.",
        tags=[TAG],
        request=InputSerializer,
        parameters=[*ERROR_HEADERS],
        responses={201: TicketEventSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, ticket_id: int) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        ticket = self.ticket_get(ticket_id)
        try:
            event = ticket_reply_send(
                ticket=ticket, body=payload.validated_data["body"], by=_actor(request)
            )
        except TicketRejected as exc:
            raise _rejected(exc) from exc
        return Response(TicketEventSerializer(event).data, status.HTTP_201_CREATED)


class TicketStatusApi(TicketScopedApi):
    required_scope = ApiKey.Scope.ANSWER

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=Ticket.Status.choices,
            help_text='"assigned" needs an assignee (assign in the staff inbox).',
        )

    @extend_schema(
        operation_id="tickets_status",
        summary="Change a ticket's status (solved stamps solved_at)",
        tags=[TAG],
        request=InputSerializer,
        parameters=[*ERROR_HEADERS],
        responses={200: TicketDetailSerializer, **error_responses(400, 404)},
    )
    def post(self, request: Request, ticket_id: int) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        ticket = self.ticket_get(ticket_id)
        try:
            ticket_status_set(
                ticket=ticket, status=payload.validated_data["status"], by=_actor(request)
            )
        except TicketRejected as exc:
            raise _rejected(exc) from exc
        return Response(TicketDetailSerializer(self.ticket_get(ticket_id)).data)
