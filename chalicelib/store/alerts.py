"""Budget alerts in DynamoDB: where they go, what was sent, and the deliveries that failed.

* The thresholds live on the key or account item itself (``alert_thresholds``), so the stream
  handler decides from the record's images alone whether anything was crossed: no read per
  record. Where deliveries go (URL, signing secret) is a ``ConfigItem("alert", "<kind>#<id>")``,
  read only when something is to be sent.
* The signing secret must be recoverable to sign. Deployed (``alert_secret_ssm_prefix``), it
  is an SSM SecureString ``<prefix><kind>/<id>`` and the item keeps ``name:version``, as channel
  keys are kept; locally it sits in the item. Nothing here returns it but ``signing_secret``.
* What was crossed and sent, and the deliveries that failed, are store/alert_outbox.py's.
"""

from __future__ import annotations

import contextlib
import secrets as random
from dataclasses import dataclass, replace
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.transactions import TransactWrite

from chalicelib.core.alerts import Budget, Sent
from chalicelib.core.audit import AuditEntry
from chalicelib.core.errors import NotFound, ServiceUnavailable
from chalicelib.core.settings import get_settings
from chalicelib.store import audit as audit_store
from chalicelib.store import secrets
from chalicelib.store.common import aws_errors, translated
from chalicelib.store.models import Account, ConfigItem, Token

Kind = Literal["account", "token"]
ALERT = "alert"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class AlertSettings:
    kind: Kind
    id: str
    account_id: str
    thresholds: tuple[int, ...]
    webhook_url: str | None
    updated_at: int
    # Exactly one is set: the secret itself (local) or its SSM parameter "name:version".
    secret: str | None = None
    secret_parameter: str | None = None
    # Deployed only: the stack's own topic and bus (core.alerts checks), as given.
    sns_topic_arn: str | None = None
    event_bus: str | None = None


def _name(kind: Kind, item_id: str) -> str:
    return f"{kind}#{item_id}"


def _model(kind: Kind) -> Any:
    return Token if kind == "token" else Account


def new_secret() -> str:
    return SECRET_PREFIX + random.token_urlsafe(32)


# Settings -----------------------------------------------------------------------------------
def get(kind: Kind, item_id: str) -> AlertSettings | None:
    with translated():
        try:
            item = ConfigItem.get(ALERT, _name(kind, item_id), consistent_read=True)
        except ConfigItem.DoesNotExist:
            return None
    body = item.body.as_dict()
    return AlertSettings(
        kind=kind,
        id=item_id,
        account_id=str(body["account_id"]),
        thresholds=tuple(int(t) for t in body["thresholds"]),
        webhook_url=body.get("webhook_url"),
        updated_at=int(item.updated_at),
        secret=body.get("secret"),
        secret_parameter=body.get("secret_parameter"),
        sns_topic_arn=body.get("sns_topic_arn"),
        event_bus=body.get("event_bus"),
    )


def put(
    settings: AlertSettings, secret: str | None, *, audit: AuditEntry | None = None
) -> AlertSettings:
    """Store ``settings`` (with a new ``secret``, or the one already kept when None).

    The thresholds go onto the key or account item, the settings into their config item and
    ``audit``'s record into the trail, in one transaction, conditional on the item still being
    there (and, for a key, still the account's): no settings for a key that is gone, and no
    change unrecorded.
    """
    kept = get(settings.kind, settings.id)
    if secret is None and kept is None:
        raise ValueError("a first setting needs a secret")
    if secret is not None:
        stored = _store_secret(settings, secret)
    else:
        assert kept is not None
        stored = replace(settings, secret=kept.secret, secret_parameter=kept.secret_parameter)
    body: dict[str, Any] = {
        "account_id": stored.account_id,
        "thresholds": list(stored.thresholds),
    }
    targets = {
        "webhook_url": stored.webhook_url,
        "sns_topic_arn": stored.sns_topic_arn,
        "event_bus": stored.event_bus,
    }
    body |= {name: value for name, value in targets.items() if value is not None}
    if stored.secret_parameter:
        body["secret_parameter"] = stored.secret_parameter
    else:
        body["secret"] = stored.secret
    model = _model(settings.kind)
    config = ConfigItem(
        ALERT, _name(settings.kind, settings.id), body=body, updated_at=settings.updated_at
    )

    def build(transaction: TransactWrite) -> None:
        transaction.update(
            model(settings.id),
            actions=[model.alert_thresholds.set(list(stored.thresholds))],
            condition=_owned(settings.kind, settings.account_id),
        )
        transaction.save(config)

    audit_store.write(build, audit, NotFound(f"No {settings.kind} with this id.", param="id"))
    return stored


def _owned(kind: Kind, account_id: str) -> Any:
    """The item is there and, for a key, is the account's."""
    model = _model(kind)
    condition = model.id.exists()
    if kind == "token":
        condition &= Token.account_id == account_id
    return condition


def delete(kind: Kind, item_id: str, account_id: str, *, audit: AuditEntry | None = None) -> None:
    """Turn alerts off: the item's thresholds and the settings go together, with the record."""
    model = _model(kind)
    kept = get(kind, item_id)

    def build(transaction: TransactWrite) -> None:
        transaction.update(
            model(item_id),
            actions=[model.alert_thresholds.remove()],
            condition=_owned(kind, account_id),
        )
        transaction.delete(ConfigItem(ALERT, _name(kind, item_id)))

    audit_store.write(build, audit, NotFound(f"No {kind} with this id.", param="id"))
    if kept is not None and kept.secret_parameter:
        _drop_parameter(kept.secret_parameter)


def _ssm() -> Any:
    import boto3  # only deployed stages with a prefix ever need it

    return boto3.client("ssm", region_name=get_settings().region)


def _parameter_name(kind: Kind, item_id: str) -> str:
    return f"{get_settings().alert_secret_ssm_prefix}{kind}/{item_id}"


def _store_secret(settings: AlertSettings, secret: str) -> AlertSettings:
    if not get_settings().alert_secret_ssm_prefix:
        return replace(settings, secret=secret, secret_parameter=None)
    name = _parameter_name(settings.kind, settings.id)
    try:
        version = _ssm().put_parameter(
            Name=name, Value=secret, Type="SecureString", Overwrite=True
        )["Version"]
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable("The webhook secret could not be stored; retry.") from exc
    return replace(settings, secret=None, secret_parameter=f"{name}:{version}")


def _drop_parameter(parameter: str) -> None:
    # Already gone, or left behind: without its settings item it signs nothing.
    with contextlib.suppress(BotoCoreError, ClientError):
        _ssm().delete_parameter(Name=parameter.rsplit(":", 1)[0])


def signing_secret(settings: AlertSettings) -> str:
    """The secret to sign with; read from SSM once per container and secret version."""
    if settings.secret_parameter:
        try:
            return secrets.ssm_parameter(settings.secret_parameter, get_settings())
        except aws_errors() as exc:
            raise ServiceUnavailable("The webhook secret could not be read.") from exc
    return str(settings.secret)


# Stream images ------------------------------------------------------------------------------
def _number(image: dict[str, Any], name: str) -> int | None:
    value = image.get(name, {}).get("N")
    return None if value is None else int(value)


def thresholds_of(image: dict[str, Any] | None) -> tuple[int, ...]:
    listed = (image or {}).get("alert_thresholds", {}).get("L", [])
    return tuple(int(v["N"]) for v in listed if "N" in v)


def budget_of(kind: Kind, image: dict[str, Any] | None) -> Budget | None:
    """Usage against quota from a stream image (DynamoDB JSON); None when nothing to measure."""
    if not image or image.get("unlimited", {}).get("BOOL"):
        return None
    quota = _number(image, "quota_units") or 0
    epoch = str(quota)
    if kind == "token":
        epoch = f"{_number(image, 'last_reset_at') or 0}/{quota}"
    return Budget(used_units=_number(image, "used_units") or 0, quota_units=quota, epoch=epoch)


def sent_of(image: dict[str, Any] | None) -> Sent | None:
    epoch = (image or {}).get("alert_epoch", {}).get("S")
    level = _number(image or {}, "alert_level")
    return None if epoch is None or level is None else Sent(epoch=epoch, level=level)


def account_of(kind: Kind, image: dict[str, Any]) -> str:
    return str(image["account_id"]["S"] if kind == "token" else image["id"]["S"])
