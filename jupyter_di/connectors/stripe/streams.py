"""The Stripe objects the source reads: where each is listed, which events change it, and its shape.

Why declared, not inferred: a first page of data decides nothing about a field that is null on it
(``canceled_at``, ``discount``), and a type picked from data changes between accounts.  Each shape
follows the Stripe API reference for the object: ``t`` a Unix timestamp (a zoned timestamp column),
``i`` an integer (amounts are integers in the currency's minor unit, as Stripe sends them), ``f`` a
decimal fraction, ``b`` a boolean, ``s`` text (an id, or an enum), ``j`` a nested object or list (a
JSON column).  Fields Stripe adds later are not read until they are declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

UPDATED_AT = "_di_updated_at"
"""When the change a row holds happened: the event's ``created`` for a row read from the Events API,
the object's ``created`` for a listed one.  The bookmark of every event-synced stream."""
DELETED_AT = "_di_deleted_at"
"""Set (the ``*.deleted`` event's time) when Stripe deleted the object; the same column name the
PostgreSQL log-based source uses for deletes."""

COMMON = "id:s object:s created:t livemode:b metadata:j"


@dataclass(frozen=True)
class StripeStream:
    name: str
    path: str
    """The list endpoint, e.g. /v1/customers."""
    object: str
    """The object's ``object`` value, which picks its events out of the others a type pattern matches
    (``charge.*`` also matches ``charge.dispute.created``, whose object is a dispute)."""
    shape: str
    events: tuple[str, ...] = ()
    """Event ``type`` patterns that carry this object; empty: synced by ``created`` instead (objects
    that do not change, or that have no events)."""
    deletes: bool = True
    """A ``<prefix>.deleted`` event means the object is gone.  Not for subscriptions:
    ``customer.subscription.deleted`` means the subscription ended (it still exists, canceled)."""
    list_params: tuple[tuple[str, str], ...] = ()
    """Fixed list parameters (subscriptions: ``status=all``, else canceled ones are left out)."""

    @property
    def by_events(self) -> bool:
        return bool(self.events)

    @property
    def replication_key(self) -> str:
        return UPDATED_AT if self.by_events else "created"

    def fields(self) -> list[tuple[str, str]]:
        """(name, kind) of every column, the common ones first, then ours for event-synced streams."""
        pairs = [tuple(item.split(":")) for item in f"{COMMON} {self.shape}".split()]
        if self.by_events:
            pairs += [(UPDATED_AT, "t"), (DELETED_AT, "t")]
        return [(name, kind) for name, kind in pairs]

    def is_delete(self, event_type: str) -> bool:
        return self.deletes and event_type.endswith(".deleted")


STREAMS: dict[str, StripeStream] = {
    s.name: s
    for s in (
        StripeStream(
            "customers",
            "/v1/customers",
            "customer",
            "address:j balance:i currency:s default_source:s delinquent:b description:s discount:j email:s invoice_prefix:s "
            "invoice_settings:j name:s next_invoice_sequence:i phone:s preferred_locales:j shipping:j tax_exempt:s test_clock:s",
            events=("customer.*",),
        ),
        StripeStream(
            "charges",
            "/v1/charges",
            "charge",
            "amount:i amount_captured:i amount_refunded:i application:s application_fee:s application_fee_amount:i "
            "balance_transaction:s billing_details:j calculated_statement_descriptor:s captured:b currency:s customer:s "
            "description:s disputed:b failure_balance_transaction:s failure_code:s failure_message:s fraud_details:j invoice:s "
            "on_behalf_of:s outcome:j paid:b payment_intent:s payment_method:s payment_method_details:j receipt_email:s "
            "receipt_number:s receipt_url:s refunded:b refunds:j review:s shipping:j source_transfer:s statement_descriptor:s "
            "statement_descriptor_suffix:s status:s transfer_data:j transfer_group:s",
            events=("charge.*",),
        ),
        StripeStream(
            "invoices",
            "/v1/invoices",
            "invoice",
            "account_country:s account_name:s amount_due:i amount_paid:i amount_remaining:i amount_shipping:i attempt_count:i "
            "attempted:b auto_advance:b automatic_tax:j billing_reason:s charge:s collection_method:s currency:s customer:s "
            "customer_email:s customer_name:s default_payment_method:s description:s discount:j discounts:j due_date:t "
            "ending_balance:i hosted_invoice_url:s invoice_pdf:s lines:j number:s paid:b payment_intent:s period_end:t "
            "period_start:t starting_balance:i status:s status_transitions:j subscription:s subtotal:i tax:i total:i "
            "webhooks_delivered_at:t",
            events=("invoice.*",),
        ),
        StripeStream(
            "invoice_items",
            "/v1/invoiceitems",
            "invoiceitem",
            "amount:i currency:s customer:s date:t description:s discountable:b invoice:s period:j plan:j price:j proration:b "
            "quantity:i subscription:s tax_rates:j unit_amount:i unit_amount_decimal:s",
            events=("invoiceitem.*",),
        ),
        StripeStream(
            "products",
            "/v1/products",
            "product",
            "active:b attributes:j caption:s default_price:s description:s images:j name:s package_dimensions:j shippable:b "
            "statement_descriptor:s tax_code:s type:s unit_label:s updated:t url:s",
            events=("product.*",),
        ),
        StripeStream(
            "prices",
            "/v1/prices",
            "price",
            "active:b billing_scheme:s currency:s lookup_key:s nickname:s product:s recurring:j tax_behavior:s tiers_mode:s "
            "transform_quantity:j type:s unit_amount:i unit_amount_decimal:s",
            events=("price.*",),
        ),
        StripeStream(
            "plans",
            "/v1/plans",
            "plan",
            "active:b aggregate_usage:s amount:i amount_decimal:s billing_scheme:s currency:s interval:s interval_count:i "
            "nickname:s product:s tiers_mode:s transform_usage:j trial_period_days:i usage_type:s",
            events=("plan.*",),
        ),
        StripeStream(
            "subscriptions",
            "/v1/subscriptions",
            "subscription",
            "application_fee_percent:f billing_cycle_anchor:t cancel_at:t cancel_at_period_end:b canceled_at:t "
            "collection_method:s currency:s current_period_end:t current_period_start:t customer:s days_until_due:i "
            "default_payment_method:s default_source:s discount:j ended_at:t items:j latest_invoice:s pending_setup_intent:s "
            "plan:j quantity:i schedule:s start_date:t status:s tax_percent:f trial_end:t trial_start:t",
            events=("customer.subscription.*",),
            deletes=False,
            list_params=(("status", "all"),),
        ),
        StripeStream(
            "payment_intents",
            "/v1/payment_intents",
            "payment_intent",
            "amount:i amount_capturable:i amount_received:i application:s canceled_at:t cancellation_reason:s capture_method:s "
            "confirmation_method:s currency:s customer:s description:s invoice:s last_payment_error:j latest_charge:s "
            "next_action:j on_behalf_of:s payment_method:s payment_method_types:j receipt_email:s setup_future_usage:s "
            "shipping:j statement_descriptor:s status:s transfer_group:s",
            events=("payment_intent.*",),
        ),
        StripeStream(
            "refunds",
            "/v1/refunds",
            "refund",
            "amount:i balance_transaction:s charge:s currency:s description:s failure_reason:s payment_intent:s reason:s "
            "receipt_number:s source_transfer_reversal:s status:s transfer_reversal:s",
            events=("refund.*", "charge.refund.updated"),
        ),
        StripeStream(
            "balance_transactions",
            "/v1/balance_transactions",
            "balance_transaction",
            "amount:i available_on:t currency:s description:s exchange_rate:f fee:i fee_details:j net:i reporting_category:s "
            "source:s status:s type:s",
        ),
        StripeStream(
            "payouts",
            "/v1/payouts",
            "payout",
            "amount:i arrival_date:t automatic:b balance_transaction:s currency:s description:s destination:s "
            "failure_balance_transaction:s failure_code:s failure_message:s method:s original_payout:s reversed_by:s "
            "source_type:s statement_descriptor:s status:s type:s",
            events=("payout.*",),
        ),
        StripeStream(
            "disputes",
            "/v1/disputes",
            "dispute",
            "amount:i balance_transactions:j charge:s currency:s evidence:j evidence_details:j is_charge_refundable:b "
            "payment_intent:s reason:s status:s",
            events=("charge.dispute.*",),
        ),
        StripeStream(
            "coupons",
            "/v1/coupons",
            "coupon",
            "amount_off:i currency:s duration:s duration_in_months:i max_redemptions:i name:s percent_off:f redeem_by:t "
            "times_redeemed:i valid:b",
            events=("coupon.*",),
        ),
        StripeStream("events", "/v1/events", "event", "account:s api_version:s data:j pending_webhooks:i request:j type:s"),
    )
}
