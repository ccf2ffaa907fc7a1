"""``kubeconfig --merge`` never loses anything: another cluster's entries of the same name are
refused (``--context`` renames, ``--force`` replaces), every replaced file is kept as a backup,
and ``-o -`` writes to stdout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import Run


@pytest.fixture
def two_labs(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """Two clusters both named lab (two CAs), their controllers at one address; $KUBECONFIG set."""
    a, b = tmp_path / "a", tmp_path / "b"
    for inv in (a, b):
        assert run("node", "c1", "10.0.0.1", "--name", "lab", inventory=inv).code == 0
    kube = tmp_path / "kube" / "config"
    monkeypatch.setenv("KUBECONFIG", str(kube))
    return a, b, kube


def _names(kube: Path, key: str) -> list[str]:
    return [e["name"] for e in yaml.safe_load(kube.read_text())[key]]


def test_a_second_cluster_of_the_same_name_is_refused_then_renamed(run: Run, two_labs: tuple[Path, Path, Path]) -> None:
    a, b, kube = two_labs
    assert run("kubeconfig", "--merge", inventory=a).code == 0
    before = kube.read_bytes()
    result = run("kubeconfig", "--merge", inventory=b)
    assert result.code == 1
    assert result.err.splitlines() == [
        f"Error: {kube} already has a cluster named 'lab' with another CA (and 1 more of its entries): merging "
        "would replace it",
        "Hint: --context NAME merges under another name; --force replaces it",
    ]
    assert kube.read_bytes() == before and sorted(p.name for p in kube.parent.iterdir()) == ["config"]
    result = run("kubeconfig", "--merge", "--context", "lab-b", inventory=b)
    assert result.code == 0, result.err
    assert _names(kube, "contexts") == ["kubernetes-admin@lab", "lab-b"]
    assert _names(kube, "clusters") == ["lab", "lab-b"] and _names(kube, "users") == ["kubernetes-admin@lab", "lab-b"]
    # the same cluster again (a renewal, or nothing new): no conflict
    assert run("kubeconfig", "--merge", inventory=a).code == 0
    assert run("kubeconfig", "--merge", "--context", "lab-b", inventory=b).code == 0


def test_another_server_of_the_same_name_is_refused_and_force_replaces_with_a_backup(
    run: Run, two_labs: tuple[Path, Path, Path]
) -> None:
    a, b, kube = two_labs
    assert run("kubeconfig", "--merge", inventory=a).code == 0
    result = run("kubeconfig", "--merge", "--server", "https://10.0.0.9:6443", inventory=a)
    assert result.code == 1
    assert result.err.startswith(
        f"Error: {kube} already has a cluster named 'lab' with server 'https://10.0.0.1:6443': merging would replace it"
    )
    first = kube.read_bytes()
    result = run("kubeconfig", "--merge", "--force", inventory=b)
    assert result.code == 0, result.err
    backups = sorted(p for p in kube.parent.iterdir() if p.name != "config")
    assert len(backups) == 1 and backups[0].read_bytes() == first
    assert os.stat(backups[0]).st_mode & 0o777 == 0o600
    # replaced in the same second again: a second backup, never over the first
    assert run("kubeconfig", "--merge", "--force", inventory=a).code == 0
    assert len([p for p in kube.parent.iterdir() if p.name != "config"]) == 2
    assert backups[0].read_bytes() == first


def test_force_and_context_are_refused_where_they_mean_nothing(run: Run, two_labs: tuple[Path, Path, Path]) -> None:
    a, _, _ = two_labs
    result = run("kubeconfig", "--force", inventory=a)
    assert result.code == 1 and result.err.splitlines()[0] == "Error: --force goes with --merge"
    result = run("kubeconfig", "--merge", "--context", "bad name", inventory=a)
    assert result.code == 1 and result.err.splitlines()[0] == "Error: invalid --context 'bad name'"


def test_output_dash_writes_the_kubeconfig_to_stdout_and_no_file(
    run: Run, two_labs: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, kube = two_labs
    monkeypatch.chdir(tmp_path)
    result = run("kubeconfig", "-o", "-", inventory=a)
    assert result.code == 0, result.err
    config = yaml.safe_load(result.out)
    assert config["current-context"] == "kubernetes-admin@lab" and config["users"][0]["user"]["client-key-data"]
    assert not (tmp_path / "-").exists() and not kube.exists()
    assert result.err.startswith("Wrote stdout (context kubernetes-admin@lab, server https://10.0.0.1:6443")
    renamed = yaml.safe_load(run("kubeconfig", "-o", "-", "--context", "lab-a", inventory=a).out)
    assert renamed["current-context"] == "lab-a" and renamed["contexts"][0]["context"] == {
        "cluster": "lab-a",
        "user": "lab-a",
    }


def test_a_merge_keeps_what_the_user_added_and_strings_go_reads_as_booleans(
    run: Run, two_labs: tuple[Path, Path, Path]
) -> None:
    a, _, kube = two_labs
    assert run("kubeconfig", "--merge", inventory=a).code == 0
    config = yaml.safe_load(kube.read_text())
    config["contexts"][0]["context"]["namespace"] = "n"  # `kubectl config set-context ... --namespace=n`
    config["clusters"][0]["cluster"]["proxy-url"] = "http://proxy.example.test:3128"
    config["contexts"].append({"name": "dev", "context": {"cluster": "x", "user": "y", "namespace": "n"}})
    kube.write_text(yaml.safe_dump(config))
    result = run("kubeconfig", "--merge", inventory=a)  # this cluster's own entries: no conflict
    assert result.code == 0, result.err
    merged = yaml.safe_load(kube.read_text())
    ours = next(c for c in merged["contexts"] if c["name"] == "kubernetes-admin@lab")
    assert ours["context"]["namespace"] == "n"
    assert merged["clusters"][0]["cluster"]["proxy-url"] == "http://proxy.example.test:3128"
    # Go's YAML 1.1 reader (kubectl's) takes a plain y or n for a boolean: they stay quoted
    assert "namespace: 'n'" in kube.read_text() and "user: 'y'" in kube.read_text()
