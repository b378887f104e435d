"""A large log is cut at line boundaries and counted by worker processes; the result is the
one a single process gives, value for value, skipped lines and their line numbers included."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from guardedllm.errors import TrafficError
from guardedllm.release import TrafficReader, replay, simulation_document, split_file

from .traffic import body, call, write_config, write_lines


def log(tmp_path: Path) -> str:
    lines: list[object] = []
    for index in range(240):
        if index % 50 == 7:
            lines.append("not json")
        elif index % 3 == 0:
            lines.append(call(time=1764896400 + index, deployment="haiku"))
        else:
            content = "ticket " * (index % 17 + 1)
            lines.append(body([{"role": "user", "content": content}], timestamp=1764896400 + index))
    return write_lines(tmp_path / "traffic.jsonl", lines)


def test_pieces_cover_the_file_at_line_boundaries(tmp_path: Path) -> None:
    path = log(tmp_path)
    data = Path(path).read_bytes()
    pieces = split_file(path, 3)
    assert len(pieces) == 3
    assert pieces[0].start == 0
    assert pieces[-1].end is None
    for before, after in itertools.pairwise(pieces):
        assert before.end == after.start
        assert data[after.start - 1 : after.start] == b"\n"
        assert after.first_line == data[: after.start].count(b"\n") + 1
    whole = [request for _, request in TrafficReader([path]).requests()]
    cut = [request for _, request in TrafficReader([path], pieces=pieces).requests()]
    assert cut == whole


def test_one_line_files_and_more_pieces_than_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "one.jsonl", [body()])
    assert [p.end for p in split_file(path, 4)] == [None]


@pytest.mark.timeout(120)
def test_workers_give_what_one_process_gives(tmp_path: Path) -> None:
    config, path = write_config(tmp_path), log(tmp_path)
    common = {"env": None, "baseline": "mini", "candidate": "haiku", "traffic": [path, path]}
    alone = replay(config, **common, workers=1)
    seen: list[int] = []
    together = replay(config, **common, workers=2, min_parallel_bytes=0, on_progress=seen.append)
    assert simulation_document(together, []) == simulation_document(alone, [])
    for name in ("mini", "haiku"):
        for metric, values in alone.deployments[name].values.items():
            assert together.deployments[name].values[metric] == values, metric
    assert together.skip_reasons[0].startswith(f"{path}:8: not JSON")
    assert sum(seen) == 2 * Path(path).stat().st_size

    newer = write_lines(tmp_path / "newer.jsonl", [body()] * 50 + [{**call(), "v": 2}])
    with pytest.raises(TrafficError, match=r"newer.jsonl:51: traffic record format v2"):
        replay(config, **{**common, "traffic": [newer]}, workers=2, min_parallel_bytes=0)
