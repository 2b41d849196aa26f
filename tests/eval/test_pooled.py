"""Listening reports pooled over draws: counts add up, intervals narrow, bad files are named."""

import json

import pytest
from click.testing import CliRunner

from affetto.errors import ConfigError
from affetto.models.evaluation.pooled import main, pool
from affetto.models.evaluation.stats import proportion


def _summary(hits: int, n: int, busier: int | None = None) -> dict:
    share = proportion(hits, n)
    out = {"valence": {"aarden_essen": share, "temperley_kostka_payne": proportion(n, n),
                       "krumhansl_judge": proportion(0, n)},
           "arousal_feature_judge": share, "single_line": proportion(1, n), "thin": proportion(0, n)}
    if busier is not None:
        out["arousal_by_seed"] = {"busier": proportion(busier, 4), "louder": proportion(4, 4)}
    return out


def _report(hits: int) -> dict:
    return {"unseeded": {"1": {"4/4": _summary(hits, 10), "3/4": _summary(10 - hits, 10)}},
            "seeded": {"1": _summary(hits, 20, busier=hits % 5)}}


def test_shares_pool_by_counting_the_phrases_of_every_draw():
    pooled = pool([_report(7), _report(4)])
    unseeded = pooled[("unseeded", "1")]
    assert unseeded[0] == proportion(7 + 3 + 4 + 6, 40)  # both meters of both draws
    assert unseeded[1] == proportion(40, 40) and unseeded[2] == proportion(0, 40)
    assert unseeded[6] is None  # no per-seed arousal for unseeded phrases
    seeded = pooled[("outside seeds", "1")]
    assert seeded[0] == proportion(11, 40)
    assert seeded[6] == proportion(2 + 4, 8)
    one = pool([_report(7)])[("outside seeds", "1")][0]
    assert seeded[0]["ci95"][1] - seeded[0]["ci95"][0] < one["ci95"][1] - one["ci95"][0]


def test_the_command_writes_a_table_per_model_and_names_what_it_cannot_read(tmp_path):
    files = []
    for i, hits in enumerate((7, 4, 9)):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(_report(hits)), encoding="utf-8")
    out = tmp_path / "pooled.md"
    result = CliRunner().invoke(main, [f"a={files[0]},{files[1]}", f"b={files[2]}", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("| a |")]
    assert len(rows) == 2 and "| 40 |" in rows[0]
    bad = CliRunner().invoke(main, ["a"])
    assert bad.exit_code != 0 and "NAME=a.json" in bad.output
    with pytest.raises(ConfigError, match="not a listening report"):
        pool([{"seeded": {}}])
