"""Reading a Prometheus exposition in tests: samples by name and labels, parsed by prometheus-client's parser."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: list[tuple[str, dict[str, str], float]]

    @classmethod
    def of(cls, text: str) -> Scrape:
        samples = [
            (s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text) for s in family.samples
        ]
        return cls(text=text, samples=samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when there are none)."""
        return sum(v for n, have, v in self.samples if n == name and labels.items() <= have.items())

    def has(self, name: str) -> bool:
        return any(n == name for n, _, _ in self.samples)

    def label_values(self) -> set[str]:
        return {v for _, labels, _ in self.samples for v in labels.values()}


def promtool_check(text: str) -> None:
    """`promtool check metrics` must accept the exposition (its lint included)."""
    binary = shutil.which("promtool")
    if binary is None:
        require("promtool", "install Debian's prometheus package (`apt-get install prometheus`)")
    assert binary is not None
    done = subprocess.run([binary, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
