"""The catalog of lambda functions, and the check every decision passes before it is acted on.

A parameter's `sources` name the alert labels that may supply it, in order of preference.
A source may carry a transform after a colon:
- `instance:host`  the host part of the label's value (`node-1:9100` -> `node-1`); never an IP
                   address, which names a scrape target, not a node;
- `service:pair`   `label=value`, a Kubernetes label selector (`service=api`);
- `statefulset:key` the label's own name, when the label is present (`statefulset`).
A value is accepted only when it equals what the first source present in the alert yields (or
the catalog default, when none is) and matches the parameter's pattern, so no selector can
invent a value or pick a less specific label. A `subject` parameter names the object acted on, so
it must not be the exporter that scraped the alert (its value holding the `job` label's value, as
the `pod` of a kube-state-metrics Job alert does).

A function's `evidence` says what an alert must show before the function may act on it; the chain
checks it (`agent_sre.selectors.gates`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from enum import Enum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import CatalogError, ConfigError
from .alert import Alert
from .decision import Proposal

ESCALATE = "escalate"
Risk = Literal["none", "low", "medium", "high"]
RISKS: tuple[str, ...] = get_args(Risk)  # in order, lowest first
_TRANSFORMS = {"", "host", "pair", "key"}


class Mode(str, Enum):
    """What a decision for a function leads to."""

    ACT = "act"  # a trigger: the function acts
    SHADOW = "shadow"  # a proposal in place of the trigger: nothing acts
    APPROVE = "approve"  # a trigger once a human approves


class ParameterSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    sources: list[str]
    pattern: str
    required: bool = True
    default: str | None = None
    description: str = ""
    subject: bool = False  # names the object acted on (a pod, a node), never the exporter

    @field_validator("sources")
    @classmethod
    def _known_transforms(cls, sources: list[str]) -> list[str]:
        for source in sources:
            if source.partition(":")[2] not in _TRANSFORMS:
                raise ValueError(f"unknown transform in source {source!r}; use one of {sorted(_TRANSFORMS)}")
        return sources

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def candidates(self, alert: Alert) -> list[str]:
        """Every value this alert can supply, in order of preference."""
        values = [v for v in (_apply(source, alert.labels) for source in self.sources) if v]
        if self.default is not None:
            values.append(self.default)
        return values

    def preferred(self, alert: Alert) -> str | None:
        """The value of the first source this alert has, else the default: `candidates(alert)[0]`."""
        for source in self.sources:
            if value := _apply(source, alert.labels):
                return value
        return self.default

    def resolve(self, alert: Alert) -> str | None:
        """The preferred value, if it matches the pattern.

        A malformed preferred value is not skipped for a later source: that one may name another
        object (with `exported_namespace` set, `namespace` is the exporter's own namespace).
        """
        value = self.preferred(alert)
        return value if value is not None and self.regex.fullmatch(value) else None


class Evidence(BaseModel):
    """What an alert must show for a function to apply. The patterns are searched (case-insensitive)
    in the alert's signal: its name, lower-cased with everything but letters and digits removed,
    then `key=value` for each of `labels` the alert has, then the metric context it gives
    (`traffic=rising`, `memory=high`; `agent_sre.knowledge.context`).

    `allow` is an allow-list per label: when the alert carries that label, its value (lower-cased,
    letters and digits only) must match the whole pattern. Flux's notification events name their
    reason in a `reason` label, and only the transient reasons are worth a reconcile: a reason the
    list does not name, however it is spelled, is refused."""

    model_config = ConfigDict(frozen=True)

    shows: list[str] = Field(default_factory=list)  # at least one must match
    never: list[str] = Field(default_factory=list)  # none may match
    labels: list[str] = Field(default_factory=list)
    allow: dict[str, str] = Field(default_factory=dict)  # label -> pattern its whole value must match

    @field_validator("shows", "never")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            re.compile(pattern)
        return patterns

    @field_validator("allow")
    @classmethod
    def _allow_compiles(cls, allow: dict[str, str]) -> dict[str, str]:
        for pattern in allow.values():
            re.compile(pattern)
        return allow


class FunctionSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    risk: Risk
    parameters: list[ParameterSpec] = Field(default_factory=list)
    when: list[str] = Field(default_factory=list)  # the situations it is for, in words
    evidence: Evidence | None = None  # None: nothing to show (escalate)
    # `shadow`: its decisions publish a proposal instead of a trigger; `act`: a trigger; `approve`:
    # a trigger once a human approves. None: AGENT_SRE_MODE decides. So a team can let one function
    # act while the rest stay in shadow.
    mode: Mode | None = None


class Rule(BaseModel):
    """A last-resort pattern: all given regexes must match (case-insensitive, anywhere)."""

    model_config = ConfigDict(frozen=True)

    function: str
    alertname: str
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str | None = None
    context: str | None = None  # searched in the metric context tokens, space-separated and sorted
    confidence: float = Field(default=0.8, ge=0, le=1)


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    functions: list[FunctionSpec]
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Catalog:
        names = [f.name for f in self.functions]
        if len(set(names)) != len(names):
            raise ValueError("function names must be unique")
        unknown = {r.function for r in self.rules} - set(names)
        if unknown:
            raise ValueError(f"rules name unknown functions: {sorted(unknown)}")
        return self

    @cached_property
    def by_name(self) -> dict[str, FunctionSpec]:
        return {f.name: f for f in self.functions}

    @cached_property
    def namespace_labels(self) -> frozenset[str]:
        """Every label that names a namespace: `namespace`, `exported_namespace`, and whatever a
        function's namespace parameter reads."""
        sources = {
            source.split(":")[0]
            for function in self.functions for param in function.parameters if param.name == "namespace"
            for source in param.sources
        }
        return frozenset({"namespace", "exported_namespace"} | sources)

    def mode(self, function: str, default: str, approval_risk: str | None = None) -> Mode:
        """`act`, `shadow` or `approve` for this function: its own mode, else the worker's
        (AGENT_SRE_MODE). One that would act waits for approval when its risk is `approval_risk`
        (AGENT_SRE_APPROVAL_RISK) or above; escalate never waits."""
        spec = self.by_name.get(function)
        mode = Mode((spec.mode if spec is not None else None) or default)
        if mode is Mode.ACT and approval_risk is not None and spec is not None and function != ESCALATE:
            if RISKS.index(spec.risk) >= RISKS.index(approval_risk):
                return Mode.APPROVE
        return mode

    def needs_approvals(self, default: str, approval_risk: str | None) -> bool:
        """Whether any function would wait for approval: the worker then needs Redis to hold them."""
        return any(self.mode(name, default, approval_risk) is Mode.APPROVE for name in self.by_name)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.functions]

    def resolve(self, function: str, alert: Alert) -> dict[str, str]:
        """Fill a function's parameters from the alert's labels; missing ones are left out."""
        spec = self._spec(function)
        return {p.name: v for p in spec.parameters if (v := p.resolve(alert)) is not None}

    def validate_proposal(self, proposal: Proposal, alert: Alert, denied_namespaces: set[str]) -> dict[str, str]:
        """The parameters to act with: the function's, resolved from the alert's labels, once every one
        is safe to act on. A value the proposal gives must be the resolved one. Raise CatalogError if not."""
        spec = self._spec(proposal.lambda_function)
        known = {p.name: p for p in spec.parameters}
        extra = set(proposal.parameters) - set(known)
        if extra:
            raise CatalogError(f"{spec.name} takes no parameter {sorted(extra)}")
        # kube-state-metrics scraped without honor_labels puts its own namespace in `namespace` and
        # the object's in `exported_namespace`: for a function that acts in a namespace, a denied one
        # in any label that names a namespace refuses. (escalate, or a node's cleanup, acts in none.)
        acts_in_namespace = any(param.name == "namespace" for param in spec.parameters)
        for key in sorted(self.namespace_labels) if acts_in_namespace else ():
            if alert.labels.get(key) in denied_namespaces:
                raise CatalogError(f"{spec.name}: the alert's {key}={alert.labels[key]!r} is on the deny list")
        parameters = {}
        for param in spec.parameters:
            preferred = param.preferred(alert)
            value = proposal.parameters.get(param.name)
            if value is None and preferred is not None and param.regex.fullmatch(preferred):
                value = preferred  # what the proposal leaves out is resolved as `resolve` does
            if value is None:
                if param.required:
                    raise CatalogError(f"{spec.name}: required parameter {param.name!r} is missing")
                continue
            if not param.regex.fullmatch(value):
                raise CatalogError(f"{spec.name}: {param.name}={value!r} does not match {param.pattern}")
            if value != preferred:
                raise CatalogError(
                    f"{spec.name}: {param.name}={value!r} is not what the alert's labels give "
                    f"(the first of {param.sources} present)"
                )
            if param.name == "namespace" and value in denied_namespaces:
                raise CatalogError(f"{spec.name}: namespace {value!r} is on the deny list")
            job = alert.labels.get("job", "")
            if param.subject and len(job) >= 4 and job in value:
                raise CatalogError(
                    f"{spec.name}: {param.name}={value!r} is the exporter that scraped the alert (job={job!r}), "
                    "not its subject"
                )
            parameters[param.name] = value
        return parameters

    def _spec(self, function: str) -> FunctionSpec:
        try:
            return self.by_name[function]
        except KeyError:
            raise CatalogError(f"unknown lambda function {function!r}") from None


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog at `path`, or the one shipped in the package."""
    try:
        if path is None:
            text = resources.files("agent_sre.data").joinpath("catalog.json").read_text()
        else:
            text = Path(path).read_text()
        return Catalog.model_validate(json.loads(text))
    except OSError as exc:
        raise ConfigError(f"catalog {path} cannot be read: {exc.strerror}") from exc
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ConfigError(f"catalog {path or '(built-in)'} is invalid: {exc}") from exc


def _apply(source: str, labels: dict[str, str]) -> str | None:
    label, _, transform = source.partition(":")
    value = labels.get(label)
    if not value:
        return None
    if transform == "":
        return value
    if transform == "host":
        return _host_part(value)
    if transform == "pair":
        return f"{label}={value}"
    return label  # "key"


def _host_part(instance: str) -> str | None:
    if instance.startswith("["):  # [::1]:9100
        host = instance[1:].split("]", 1)[0]
    else:
        name, sep, port = instance.rpartition(":")
        # A bare IPv6 address has colons but no port to strip.
        host = name if sep and port.isdigit() and ":" not in name else instance
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None  # an address names a scrape target; it is no node name
