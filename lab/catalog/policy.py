"""Dataset policies: the catalog entry and the per-channel limits, one YAML file per dataset.

A policy is validated with pydantic; :func:`load_policy` turns every validation failure
into :class:`~lab.errors.InvalidPolicy` naming the file, the field and the reason.
Rules beyond types: personal information and trade secrets are non-open (article 20);
share attribute ``none`` needs a legal basis (article 16); a non-open dataset opened to DP or
PSI has a privacy-loss ``account`` (lifetime and per-period ε/δ), an open one has none; PSI
``intersection`` mode is only for open datasets; every PSI column is an identifier; DP group-by
and filter columns have declared domains or bounds.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lab.errors import InvalidPolicy

POLICY_VERSION: Final = 1


class Classification(StrEnum):
    """Classification levels (article 28): 1 public … 4 core."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    L4 = "L4"


class ShareAttribute(StrEnum):
    unconditional = "unconditional"
    conditional = "conditional"
    none = "none"


class OpenAttribute(StrEnum):
    unconditional = "unconditional"
    conditional = "conditional"
    non_open = "non-open"


class ColumnRole(StrEnum):
    entity_key = "entity_key"
    identifier = "identifier"
    categorical = "categorical"
    numeric = "numeric"
    date = "date"
    text = "text"


class Normalization(StrEnum):
    uscc = "uscc"
    resident_id = "resident_id"
    phone = "phone"
    generic = "generic"


class PsiMode(StrEnum):
    intersection = "intersection"
    cardinality = "cardinality"
    cohort = "cohort"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Title(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Column(_Strict):
    """One column of the schema, with its role."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    role: ColumnRole
    type: Literal["string", "integer", "float", "date"] = "string"
    description: str = ""
    normalization: Normalization | None = None
    domain: tuple[str, ...] | None = None
    bounds: tuple[Decimal, Decimal] | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _role_fields(self) -> Column:
        if self.role is ColumnRole.identifier and self.normalization is None:
            raise ValueError("an identifier column needs a normalization (uscc, resident_id, phone, generic)")
        if self.role is not ColumnRole.identifier and self.normalization is not None:
            raise ValueError("only identifier columns take a normalization")
        if self.role is ColumnRole.categorical and not self.domain:
            raise ValueError("a categorical column needs a declared domain")
        if self.role is ColumnRole.numeric:
            if self.bounds is None:
                raise ValueError("a numeric column needs declared bounds [low, high]")
            if self.bounds[0] >= self.bounds[1]:
                raise ValueError("bounds must be [low, high] with low < high")
            if self.type not in ("integer", "float"):
                raise ValueError("a numeric column has type integer or float")
        if self.role is ColumnRole.date and self.type != "date":
            raise ValueError("a date column has type date")
        if self.domain is not None and len(set(self.domain)) != len(self.domain):
            raise ValueError("domain values must be distinct")
        return self


Epsilon = Annotated[Decimal, Field(gt=0, le=100)]
Delta = Annotated[Decimal, Field(ge=0, lt=1)]
#: A dataset account's composition rule (:mod:`lab.budgets.accounting`).
Composition = Literal["basic", "zcdp"]


class DpPolicy(_Strict):
    """Limits of the differential privacy channel."""

    epsilon_per_project: Epsilon
    epsilon_per_query: Epsilon
    delta_per_project: Delta = Decimal(0)
    delta_per_query: Delta = Decimal(0)
    max_rows_per_entity: int = Field(1, ge=1, le=1000)
    filterable: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    min_cell_count: int = Field(10, ge=0)

    @model_validator(mode="after")
    def _caps(self) -> DpPolicy:
        if self.epsilon_per_query > self.epsilon_per_project:
            raise ValueError("epsilon_per_query cannot exceed epsilon_per_project")
        if self.delta_per_query > self.delta_per_project:
            raise ValueError("delta_per_query cannot exceed delta_per_project")
        return self


class PsiColumn(_Strict):
    modes: tuple[PsiMode, ...] = Field(min_length=1)


class PsiPolicy(_Strict):
    """Limits of the private set intersection channel."""

    columns: dict[str, PsiColumn] = Field(min_length=1)
    min_client_set: int = Field(10, ge=1)
    max_client_set: int = Field(1_000_000, ge=1)
    daily_quota: int = Field(20, ge=1)
    cohort_epsilon: Epsilon = Decimal("0.1")

    @model_validator(mode="after")
    def _sizes(self) -> PsiPolicy:
        if self.min_client_set > self.max_client_set:
            raise ValueError("min_client_set cannot exceed max_client_set")
        return self


class HePolicy(_Strict):
    """Limits of the homomorphic computation channel."""

    models: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    record_quota: int = Field(100_000, ge=1)


class AccountPolicy(_Strict):
    """The dataset's privacy-loss account per person, across every project and channel (set by the steward).

    ``epsilon``/``delta`` bound everything ever released about one person; ``period_epsilon``/
    ``period_delta`` bound what may be released per calendar ``period`` (UTC). ``composition`` is the
    account's one rule for its whole life (:mod:`lab.budgets.accounting`): ``basic`` (Σε, Σδ) or
    ``zcdp`` (Σρ, converted to ε at the account's δ; needs both δ > 0). Default: ``zcdp`` when both
    δ are > 0, else ``basic``. A later version of the policy cannot change it
    (:class:`~lab.errors.AccountRuleFixed`).

    >>> AccountPolicy(epsilon=Decimal(8), delta=Decimal("0.00005"), period_epsilon=Decimal(5),
    ...               period_delta=Decimal("0.00003")).composition
    'zcdp'
    >>> AccountPolicy(epsilon=Decimal(8), period_epsilon=Decimal(5)).composition
    'basic'
    """

    epsilon: Epsilon
    delta: Delta = Decimal(0)
    period: Literal["year"] = "year"
    period_epsilon: Epsilon
    period_delta: Delta = Decimal(0)
    composition: Composition = "basic"

    @model_validator(mode="before")
    @classmethod
    def _default_rule(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("composition") is None:
            try:
                deltas = [Decimal(str(data.get(k) or 0)) for k in ("delta", "period_delta")]
            except ArithmeticError:  # an invalid δ: its own field reports it
                return data
            data = {**data, "composition": "zcdp" if all(d > 0 for d in deltas) else "basic"}
        return data

    @model_validator(mode="after")
    def _within(self) -> AccountPolicy:
        if self.period_epsilon > self.epsilon or self.period_delta > self.delta:
            raise ValueError("the per-period allowance cannot exceed the lifetime account")
        if self.composition == "zcdp" and (self.delta == 0 or self.period_delta == 0):
            raise ValueError(
                "composition zcdp is converted to ε at the account's δ: delta and period_delta must be > 0"
            )
        return self


class Channels(_Strict):
    dp: DpPolicy | None = None
    psi: PsiPolicy | None = None
    he: HePolicy | None = None


class Share(_Strict):
    attribute: ShareAttribute
    conditions: str | None = None
    legal_basis: str | None = None

    @model_validator(mode="after")
    def _basis(self) -> Share:
        if self.attribute is ShareAttribute.none and not (self.legal_basis or "").strip():
            raise ValueError("share attribute 'none' needs a legal_basis (article 16)")
        return self


class Policy(_Strict):
    """A dataset's catalog entry and access policy."""

    policy_version: Literal[1] = POLICY_VERSION
    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    title: Title
    description: str = ""
    responsible_unit: str = Field(min_length=1)
    format: Literal["csv", "parquet"] = "parquet"
    classification: Classification
    personal_information: bool = False
    trade_secret: bool = False
    share: Share
    open: OpenAttribute
    update_cycle: Literal["realtime", "daily", "weekly", "monthly", "quarterly", "yearly", "irregular"]
    retention_days: int = Field(365, ge=1)
    columns: tuple[Column, ...] = Field(min_length=1)
    channels: Channels = Channels()
    account: AccountPolicy | None = None

    @field_validator("columns")
    @classmethod
    def _unique(cls, cols: tuple[Column, ...]) -> tuple[Column, ...]:
        names = [c.name for c in cols]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate column names: {sorted(dup)}")
        if sum(c.role is ColumnRole.entity_key for c in cols) != 1:
            raise ValueError("exactly one column must have role entity_key")
        return cols

    @model_validator(mode="after")
    def _rules(self) -> Policy:
        if (self.personal_information or self.trade_secret) and self.open is not OpenAttribute.non_open:
            raise ValueError("open: personal information and trade secrets must be non-open (article 20)")
        cols = {c.name: c for c in self.columns}
        dp, psi = self.channels.dp, self.channels.psi
        if self.is_open and self.account is not None:
            raise ValueError("account: open datasets have no privacy-loss account")
        if dp:
            for name in dp.group_by:
                if name not in cols or cols[name].domain is None:
                    raise ValueError(f"channels.dp.group_by: column {name!r} has no declared domain")
            for name in dp.filterable:
                col = cols.get(name)
                if col is None or col.role not in (
                    ColumnRole.categorical,
                    ColumnRole.numeric,
                    ColumnRole.date,
                ):
                    raise ValueError(
                        f"channels.dp.filterable: column {name!r} is not categorical, numeric or date"
                    )
        if psi:
            for name, spec in psi.columns.items():
                col = cols.get(name)
                if col is None or col.role is not ColumnRole.identifier:
                    raise ValueError(f"channels.psi.columns: {name!r} is not an identifier column")
                for mode in (PsiMode.intersection, PsiMode.cardinality):
                    if mode in spec.modes and self.open is OpenAttribute.non_open:
                        raise ValueError(
                            f"channels.psi.columns.{name}: {mode.value} mode reveals membership "
                            "(a modified client turns a count into membership); it is allowed only "
                            "on open datasets — on non-open data use cohort mode and DP"
                        )
        return self

    @property
    def is_open(self) -> bool:
        return self.open is not OpenAttribute.non_open

    @property
    def entity_key(self) -> str:
        return next(c.name for c in self.columns if c.role is ColumnRole.entity_key)

    @property
    def needs_account(self) -> bool:
        """A non-open dataset opened to a channel that charges privacy loss (DP, PSI cohorts)."""
        return not self.is_open and (self.channels.dp is not None or self.channels.psi is not None)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def parse_policy(data: Any, source: str = "<policy>") -> Policy:
    """Validate policy data; errors name the source, field and reason."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        reason = first["msg"].removeprefix("Value error, ")
        raise InvalidPolicy(
            f"{source}: {field}: {reason}",
            file=source,
            field=field,
            errors=[
                {
                    "field": ".".join(str(p) for p in e["loc"]),
                    "reason": e["msg"].removeprefix("Value error, "),
                }
                for e in exc.errors()
            ],
        ) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidPolicy(f"{p}: file not found", file=str(p)) from None
    except yaml.YAMLError as exc:
        raise InvalidPolicy(f"{p}: not valid YAML: {exc}", file=str(p)) from None
    if not isinstance(data, dict):
        raise InvalidPolicy(f"{p}: (top level): a policy is a mapping", file=str(p), field="(top level)")
    return parse_policy(data, str(p))


def require_account(policy: Policy, source: str = "<policy>") -> None:
    """Refuse to import a non-open policy that opens DP or PSI without a privacy-loss ``account``.

    Checked at import, not on reading stored versions: a version stored before accounts existed
    still reads, and charged releases on it are refused until the steward imports one with an account.
    """
    if policy.needs_account and policy.account is None:
        raise InvalidPolicy(
            f"{source}: account: a non-open dataset opened to DP or PSI needs a privacy-loss account",
            file=source,
            field="account",
        )
