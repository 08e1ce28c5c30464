"""Which input fields are features, found from a sample of the events, and what looks wrong with them.

A user's own stream rarely names its features as the built-in generator does: with
``features.numeric: auto`` / ``features.categorical: auto`` the client reads a sample of the input
before the job starts, takes numbers as numeric and strings and bools as categorical, and fixes
that schema for the run. Whatever the lists say (inferred or configured), the same sample says
which fields are not used, which configured fields never appear, and which columns are constant
or almost always missing: a job that silently ignores every feature looks like it works.

>>> lines = ['{"event_id": "e%d", "user_id": "u", "event_time": 0, "features": {"0": %d, "os": "ios", "k": 1}}' % (i, i)
...          for i in range(200)]
>>> schema = infer_schema(lines, numeric=AUTO, categorical=("os", "browser"))
>>> schema.numeric, schema.categorical
(('0', 'k'), ('os', 'browser'))
>>> for warning in schema.warnings: print(warning)
features.categorical: 'browser' is configured but appears in none of the 200 sampled events
column 'k' is constant (1 in all 200 sampled events that have it): it carries no signal
column 'os' is constant ('ios' in all 200 sampled events that have it): it carries no signal
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from conf.settings import SettingsError
from udfs.features.events import finite_float, loads

if TYPE_CHECKING:
    from conf.settings import Settings

AUTO = "auto"
MOSTLY_MISSING = 0.99  # a column missing in more than this share of events is reported


@dataclass
class FieldProfile:
    """What the sample holds for one key of ``features``: how often, of which types, which values."""

    name: str
    numbers: int = 0
    fractions: int = 0  # numbers that are not integers (a categorical column takes ints, not floats)
    texts: int = 0   # strings and bools
    others: int = 0  # lists, objects: not a feature type
    non_finite: int = 0  # NaN, infinities, integers beyond a float's range
    first_value: Any = None
    constant: bool = True

    @property
    def present(self) -> int:
        return self.numbers + self.texts + self.others + self.non_finite

    def add(self, value: Any) -> None:
        if isinstance(value, (bool, str)):
            self.texts += 1
        elif isinstance(value, (int, float)):
            finite = finite_float(value) is not None
            self.numbers += finite
            self.fractions += not isinstance(value, int)
            self.non_finite += not finite
        else:
            self.others += 1
        if self.present == 1:
            self.first_value = value
        elif value != self.first_value:
            self.constant = False

    @property
    def kind(self) -> Literal["numeric", "categorical"] | None:
        """Numbers are numeric, strings and bools categorical; mixed fields take their majority."""
        if self.numbers == self.texts == 0:
            return None
        return "numeric" if self.numbers > self.texts else "categorical"


@dataclass(frozen=True)
class FeatureSchema:
    """The run's feature columns, where they came from, and the sample's warnings (printed, logged to
    MLflow as ``schema.json``, in ``summary.json``; kept beside a savepoint so a resumed job keeps them)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    inferred: tuple[str, ...]  # which lists were ``auto``: "numeric", "categorical"
    sample_events: int
    field_counts: dict[str, int] = field(default_factory=dict)  # sampled events carrying each field
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSchema:
        return cls(numeric=tuple(data["numeric"]), categorical=tuple(data["categorical"]),
                   inferred=tuple(data["inferred"]), sample_events=int(data["sample_events"]),
                   field_counts=dict(data["field_counts"]), warnings=tuple(data["warnings"]))

    def describe(self) -> str:
        """One line for the start-up log and the summary."""
        how = (f"{' and '.join(self.inferred)} inferred from {self.sample_events} sampled events" if self.inferred
               else f"as configured; checked on {self.sample_events} sampled events")
        return f"numeric {list(self.numeric)}, categorical {list(self.categorical)} ({how})"

    def ordered_like(self, names: Sequence[str]) -> FeatureSchema:
        """The inferred lists in the order of ``names`` (a warm-start model's columns: a Parquet struct
        may list the fields in another order than the JSON the model was trained on); others after."""
        rank = {name: k for k, name in enumerate(names)}

        def order(columns: tuple[str, ...], kind: str) -> tuple[str, ...]:
            if kind not in self.inferred:
                return columns
            return tuple(sorted(columns, key=lambda c: rank.get(c, len(rank))))
        return replace(self, numeric=order(self.numeric, "numeric"), categorical=order(self.categorical, "categorical"))

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with these columns in place of ``auto``: what the operators receive."""
        unknown = sorted(set(settings.drift.features or ()) - set(self.numeric))
        if unknown:
            raise SettingsError(f"drift.features: {unknown} are not among the numeric features {list(self.numeric)}")
        features = settings.features.model_copy(update={"numeric": self.numeric, "categorical": self.categorical})
        return settings.model_copy(update={"features": features})


def profile_sample(lines: Iterable[str], max_record_bytes: int) -> tuple[int, dict[str, FieldProfile]]:
    """Events in ``lines`` that look like events (JSON objects with a ``user_id``), and a profile of each
    feature key in order of first appearance; lines over ``max_record_bytes`` and broken ones are
    skipped (the job dead-letters them)."""
    events, profiles = 0, {}
    for line in lines:
        if len(line) > max_record_bytes:
            continue
        try:
            obj = loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("user_id") is None:
            continue
        events += 1
        features = obj.get("features")
        if not isinstance(features, dict):
            continue
        for name, value in features.items():
            if value is not None:
                profiles.setdefault(name, FieldProfile(name)).add(value)
    return events, profiles


def infer_schema(lines: Iterable[str], numeric: tuple[str, ...] | str, categorical: tuple[str, ...] | str,
                 max_record_bytes: int = 65_536) -> FeatureSchema:
    """The feature lists for ``numeric`` / ``categorical`` (``auto`` or names) and what the sample says
    about them (``max_record_bytes``: ``validation.max_record_bytes``)."""
    events, profiles = profile_sample(lines, max_record_bytes)
    configured = set() if numeric == AUTO else set(numeric)
    configured |= set() if categorical == AUTO else set(categorical)
    free = [p for p in profiles.values() if p.name not in configured]
    inferred = tuple(name for name, was in (("numeric", numeric), ("categorical", categorical)) if was == AUTO)
    if numeric == AUTO:
        numeric = tuple(p.name for p in free if p.kind == "numeric")
    if categorical == AUTO:
        categorical = tuple(p.name for p in free if p.kind == "categorical")
    return FeatureSchema(
        numeric=tuple(numeric), categorical=tuple(categorical), inferred=inferred, sample_events=events,
        field_counts={p.name: p.present for p in profiles.values()},
        warnings=tuple(_warnings(events, profiles, tuple(numeric), tuple(categorical))))


def _warnings(events: int, profiles: dict[str, FieldProfile], numeric: tuple[str, ...],
              categorical: tuple[str, ...]) -> list[str]:
    used = {**{n: "numeric" for n in numeric}, **{n: "categorical" for n in categorical}}
    out = []
    for p in profiles.values():
        if p.name not in used:
            why = "values are not numbers, strings or bools" if p.kind is None else "not in features.numeric or features.categorical"
            out.append(f"field '{p.name}' appears in {p.present} of {events} sampled events but is not used ({why})")
    for name, kind in used.items():
        if name not in profiles:
            out.append(f"features.{kind}: '{name}' is configured but appears in none of the {events} sampled events")
    for name, kind in used.items():
        p = profiles.get(name)
        if p is None:
            continue
        wrong = p.texts if kind == "numeric" else p.fractions
        if wrong or p.others:
            expected = "numbers" if kind == "numeric" else "strings or bools"
            out.append(f"column '{name}' ({kind}) has {wrong + p.others} of {p.present} sampled values that are not "
                       f"{expected}: those events will be dead-lettered as bad_feature_type")
        if p.non_finite and kind == "numeric":
            out.append(f"column '{name}' has {p.non_finite} of {p.present} sampled values that are NaN, infinite or "
                       "beyond a float's range: those events will be dead-lettered as non_finite_feature")
        if events and p.present < (1 - MOSTLY_MISSING) * events:
            out.append(f"column '{name}' is missing in {1 - p.present / events:.1%} of {events} sampled events")
        elif p.constant and p.present > 1:
            out.append(f"column '{name}' is constant ({p.first_value!r} in all {p.present} sampled events "
                       "that have it): it carries no signal")
    return out
