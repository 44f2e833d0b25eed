"""``ARCODEX_*`` variables are read exactly as pydantic-settings reads them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import create_model

from arcodex.catalog._config import CatalogConfig

pydantic_settings = pytest.importorskip("pydantic_settings")


def _reference() -> Any:
    """CatalogConfig's fields on pydantic-settings, the environment winning over arguments."""

    class Base(pydantic_settings.BaseSettings):
        model_config = pydantic_settings.SettingsConfigDict(
            env_prefix="ARCODEX_", env_nested_delimiter="__", extra="forbid", frozen=True
        )

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: Any, init_settings: Any, env_settings: Any, **_: Any
        ) -> Any:
            return env_settings, init_settings

    fields = {name: (f.annotation, f) for name, f in CatalogConfig.model_fields.items()}
    return create_model("Reference", __base__=Base, **fields)  # type: ignore[call-overload]


ENVIRONMENTS = [
    {},
    {"ARCODEX_SCHEMA_POLICY": "strict", "ARCODEX_CATALOG": "/elsewhere"},
    {"arcodex_busy_timeout": "5", "ARCODEX_DATABASE_URL": "sqlite:///x.sqlite"},
    {"ARCODEX_SERVER__MAX_LIMIT": "50", "ARCODEX_SERVER__FORWARDED_ALLOW_IPS": '["10.0.0.1"]'},
    {"ARCODEX_SERVER": '{"max_list": 7}', "ARCODEX_CLUSTER__WORKERS": "3"},
    {"ARCODEX_STAC_ASSET_HREFS": '{"/data": "https://example.org/data"}'},
    {"ARCODEX_PROFILES__LOCAL__TYPE": "file", "ARCODEX_PROFILES__LOCAL__ROOT": "/srv/store"},
    {"ARCODEX_DEFAULT_PROFILE": "other", "ARCODEX_FAIL_AT": "planned"},
]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize(
    "given", [{}, {"schema_policy": "off", "server": {"max_limit": 10, "max_list": 20}}]
)
def test_environment_as_pydantic_settings_reads_it(
    environment: dict[str, str], given: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in __import__("os").environ if n.upper().startswith("ARCODEX_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    ours = CatalogConfig(**given).model_dump()
    assert ours == _reference()(**given).model_dump()


def test_a_bad_value_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCODEX_SCHEMA_POLICY", "bogus")
    with pytest.raises(ValueError, match="schema_policy"):
        CatalogConfig()
