"""Training never overwrites what it did not make: a new run refuses a checkpoint folder or run
folder that is not empty unless --overwrite is given, a run folder records whose checkpoint it is
(so another --out cannot resume it or start over it), runs for an --out outside the working
directory are kept beside it, and runs/NAME resumes checkpoints/NAME, as the shipped cards name
them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from app.cli import main
from app.training import TrainingError, train
from app.training.args import TrainArgs
from app.training.common import claim_folders
from tests.conftest import tiny_args

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(steps=4, batch_size=8, eval_images=64, log_every=2)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> TrainArgs:
    """A tiny VAE's checkpoint folder and run folder, trained once for 4 steps; tests copy them."""
    root = tmp_path_factory.mktemp("made")
    args = tiny_args(root / "ck", run_dir=root / "run", **TINY)
    assert train(args) == 0
    return args


def copy_of(made: TrainArgs, where: Path) -> tuple[Path, Path]:
    out, run = where / "ck", where / "run"
    shutil.copytree(made.out, out)
    shutil.copytree(made.run_path, run)
    return out, run


def test_the_run_folder_records_its_checkpoint_folder(made):
    record = json.loads((made.run_path / "trainer.json").read_text())["checkpoint"]
    assert record == {"path": str(made.out.resolve()), "from_run_dir": "../ck"}


def test_a_new_run_refuses_an_existing_checkpoint_folder_and_writes_nothing(made, tmp_path):
    out, _ = copy_of(made, tmp_path)
    before = snapshot(out)
    with pytest.raises(TrainingError) as refused:
        train(tiny_args(out, run_dir=tmp_path / "new-run", **TINY))
    assert str(refused.value) == (
        f"{out} already holds a checkpoint: choose another --out, or pass --overwrite to replace it"
    )
    assert snapshot(out) == before
    assert not (tmp_path / "new-run").exists()


def test_a_new_run_refuses_another_checkpoints_run_folder_naming_both(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    before = snapshot(run)
    other = tmp_path / "other"
    with pytest.raises(TrainingError) as refused:
        train(tiny_args(other, run_dir=run, **TINY))
    assert str(refused.value) == (
        f"{run} already holds the run of {out.resolve()} (step 4), not of {other}: give this "
        "run another --run-dir, or pass --overwrite to replace it"
    )
    assert snapshot(run) == before and not other.exists()


def test_starting_a_run_again_refuses_both_folders_and_offers_resume(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(TrainingError) as refused:
        train(tiny_args(out, run_dir=run, **TINY))
    assert str(refused.value) == (
        f"{out} already holds a checkpoint; {run} already holds the run of {out.resolve()} "
        "(step 4): continue it with --resume, choose another --out, or pass --overwrite to "
        "replace both"
    )
    assert snapshot(tmp_path) == before


def test_empty_folders_are_not_refused(tmp_path):
    out, run = tmp_path / "ck", tmp_path / "run"
    out.mkdir()
    run.mkdir()
    claim_folders(tiny_args(out, run_dir=run))  # no error


def test_overwrite_replaces_both_folders_with_the_new_run(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    assert train(tiny_args(out, run_dir=run, seed=1, overwrite=True, **TINY)) == 0
    # the same run into empty folders: what --overwrite must leave behind
    fresh = tiny_args(tmp_path / "fresh", run_dir=tmp_path / "fresh-run", seed=1, **TINY)
    assert train(fresh) == 0
    assert same_weights(out, fresh.out) and same_weights(run, fresh.run_path)
    assert not same_weights(out, made.out)
    assert json.loads((out / "card.json").read_text())["seed"] == 1
    assert json.loads((run / "trainer.json").read_text())["checkpoint"]["path"] == str(
        out.resolve()
    )


def test_overwrite_keeps_nothing_of_the_old_models_card(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    card = json.loads((out / "card.json").read_text())
    old = {
        "metrics": {"digest": "old", "scores": {"mig": {"mean": 0.5}}},
        "renamed_from": {"name": "older", "why": "test"},
        "repaired": [{"date": "2026-12-01", "what": "x", "from": "y"}],
    }
    (out / "card.json").write_text(json.dumps({**card, **old}))
    assert train(tiny_args(out, run_dir=run, seed=1, overwrite=True, save_every=2, **TINY)) == 0
    # neither the first save (which replaces the folder) nor later ones bring them back
    assert not set(old) & set(json.loads((out / "card.json").read_text()))


def test_overwrite_does_not_go_with_resume(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    with pytest.raises(TrainingError, match="--overwrite starts a new run .* not go with --resume"):
        train(tiny_args(out, run_dir=run, resume=True, overwrite=True, **TINY))


def test_the_run_folder_cannot_be_the_checkpoint_folder(tmp_path):
    with pytest.raises(TrainingError, match=r"--run-dir .*ck is the checkpoint folder --out"):
        train(tiny_args(tmp_path / "ck", run_dir=tmp_path / "ck", **TINY))
    assert not (tmp_path / "ck").exists()


def test_resume_still_continues_its_own_run(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    assert train(tiny_args(out, run_dir=run, resume=True, **{**TINY, "steps": 6})) == 0
    assert json.loads((out / "card.json").read_text())["steps"] == 6
    assert json.loads((run / "trainer.json").read_text())["step"] == 6


def test_resume_refuses_a_run_folder_made_for_another_checkpoint_folder(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    before = snapshot(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "ck"
    with pytest.raises(TrainingError) as refused:
        train(tiny_args(elsewhere, run_dir=run, resume=True, **TINY))
    assert str(refused.value) == (
        f"cannot resume: {run} holds the run of {out.resolve()} (step 4), not of {elsewhere}: "
        f"resume it with --out {out.resolve()}, or give {elsewhere} its own --run-dir"
    )
    assert snapshot(tmp_path) == before and not elsewhere.exists()


def test_resume_refuses_a_checkpoint_folder_another_run_replaced(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    # another run's checkpoint now fills the folder this run writes
    other = tiny_args(tmp_path / "other", run_dir=tmp_path / "other-run", seed=3, **TINY)
    assert train(other) == 0
    shutil.rmtree(out)
    shutil.copytree(other.out, out)
    before = snapshot(out)
    with pytest.raises(TrainingError) as refused:
        train(tiny_args(out, run_dir=run, resume=True, **{**TINY, "steps": 6}))
    assert str(refused.value) == (
        f"cannot resume: {out} holds weights that the run in {run} (step 4) did not save: give "
        "this run another --out"
    )
    assert snapshot(out) == before


def test_resume_takes_a_checkpoint_one_save_behind_its_run(made, tmp_path):
    """A crash between saving the run folder and the checkpoint leaves the checkpoint a save
    behind; its card still names the run folder, so the run may write it again."""
    out, run = copy_of(made, tmp_path)
    assert train(tiny_args(out, run_dir=run, resume=True, **{**TINY, "steps": 6})) == 0
    behind = snapshot(out)
    assert train(tiny_args(out, run_dir=run, resume=True, **{**TINY, "steps": 8})) == 0
    for name, data in behind.items():  # the checkpoint as the crash left it, at step 6
        (out / name).write_bytes(data)
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 6 and card["run_dir"] == str(run)
    assert not same_weights(out, run)
    assert train(tiny_args(out, run_dir=run, resume=True, **{**TINY, "steps": 10})) == 0
    assert json.loads((out / "card.json").read_text())["steps"] == 10


def test_a_run_saved_before_the_record_belongs_to_the_out_it_started_with(made, tmp_path):
    out, run = copy_of(made, tmp_path)
    trainer_json = run / "trainer.json"
    trainer = json.loads(trainer_json.read_text())
    del trainer["checkpoint"]  # as in every run saved before the record existed
    trainer["args"]["out"] = str(out)
    trainer_json.write_text(json.dumps(trainer))
    # another --out is refused, naming the --out the run started with
    with pytest.raises(
        TrainingError, match=re.escape(f"{run} holds the run of {out} (step 4), not of")
    ):
        claim_folders(tiny_args(tmp_path / "other", run_dir=run, resume=True))
    # renamed together, the checkpoint still holds the run's weights: it is still its own
    renamed = tmp_path / "renamed"
    out.rename(renamed)
    claim_folders(tiny_args(renamed, run_dir=run, resume=True))
    assert train(tiny_args(renamed, run_dir=run, resume=True, **{**TINY, "steps": 6})) == 0
    record = json.loads(trainer_json.read_text())["checkpoint"]
    assert record["path"] == str(renamed.resolve())  # from now on, the record names it


def test_the_shipped_cards_name_the_run_folder_their_checkpoint_gets_by_default(monkeypatch):
    """A card's run_dir is where `train --out checkpoints/NAME` keeps its run, so the card's
    commands run again in a clone write their state where the card says (runs/ itself is not
    in the repository)."""
    monkeypatch.chdir(ROOT)
    cards = {p.parent: json.loads(p.read_text()) for p in ROOT.glob("checkpoints/*/card.json")}
    named = {folder: card["run_dir"] for folder, card in cards.items() if "run_dir" in card}
    assert len(named) >= 11, sorted(named)
    for folder, run_dir in named.items():
        args = TrainArgs(out=folder.relative_to(ROOT), run_dir=None, command="t")
        assert args.run_path == Path(run_dir), folder.name


def test_runs_in_the_repository_layout_resume_their_own_checkpoints_only(tmp_path, monkeypatch):
    """checkpoints/NAME keeps its run in runs/NAME; that run resumes checkpoints/NAME, and after
    both are renamed together and resumed, the new name only, never another model's folder."""
    monkeypatch.chdir(tmp_path)
    a = tiny_args(Path("checkpoints/a"), run_dir=None, **TINY)
    b = tiny_args(Path("checkpoints/b"), run_dir=None, **{**TINY, "seed": 1})
    assert a.run_path == Path("runs/a") and b.run_path == Path("runs/b")
    assert train(a) == 0 and train(b) == 0

    def claim(out: str, run: str) -> None:
        claim_folders(TrainArgs(out=Path(out), run_dir=Path(run), resume=True, command="t"))

    claim("checkpoints/a", "runs/a")
    claim("checkpoints/b", "runs/b")
    for out, run in [("checkpoints/b", "runs/a"), ("checkpoints/a", "runs/b")]:
        with pytest.raises(TrainingError, match=f"cannot resume: .*not of {re.escape(out)}"):
            claim(out, run)
    # renamed with its run, and resumed under the new name: the old name is no longer its own
    Path("checkpoints/a").rename("checkpoints/c")
    Path("runs/a").rename("runs/c")
    c = tiny_args(Path("checkpoints/c"), run_dir=None, resume=True, **{**TINY, "steps": 6})
    assert train(c) == 0
    claim("checkpoints/c", "runs/c")
    for out in ("checkpoints/a", "checkpoints/b"):
        with pytest.raises(TrainingError, match=f"cannot resume: .*not of {re.escape(out)}"):
            claim(out, "runs/c")


def test_an_out_outside_the_working_directory_keeps_its_run_beside_it(made, tmp_path, monkeypatch):
    """Run from the repository, `--out /elsewhere/NAME` keeps its run in /elsewhere/runs/NAME,
    never in the repository's runs/NAME (the run of its own checkpoints/NAME)."""
    repo = tmp_path / "repo"
    out, run = copy_of(made, tmp_path)
    (repo / "checkpoints").mkdir(parents=True)
    out.rename(repo / "checkpoints" / "m")
    (repo / "runs").mkdir()
    run.rename(repo / "runs" / "m")
    trainer_json = repo / "runs" / "m" / "trainer.json"
    trainer = json.loads(trainer_json.read_text())
    trainer["checkpoint"] = {"path": "/moved/away", "from_run_dir": "../../checkpoints/m"}
    trainer_json.write_text(json.dumps(trainer))
    monkeypatch.chdir(repo)
    shipped = snapshot(repo)

    elsewhere = tmp_path / "elsewhere" / "m"
    args = tiny_args(elsewhere, run_dir=None, **{**TINY, "seed": 5})
    assert args.run_path == tmp_path / "elsewhere" / "runs" / "m"
    assert train(args) == 0
    assert snapshot(repo) == shipped
    assert (tmp_path / "elsewhere" / "runs" / "m" / "trainer.json").exists()

    # inside the working directory, a second NAME would share runs/NAME: refused, naming both
    with pytest.raises(TrainingError) as refused:
        train(tiny_args(Path("experiments/m"), run_dir=None, **TINY))
    assert str(refused.value) == (
        "runs/m already holds the run of checkpoints/m (step 4), not of experiments/m: give "
        "this run another --run-dir, or pass --overwrite to replace it"
    )
    # and the repository's run cannot be resumed for the checkpoint elsewhere
    with pytest.raises(
        TrainingError, match=f"runs/m holds the run of checkpoints/m .* {re.escape(str(elsewhere))}"
    ):
        train(tiny_args(elsewhere, run_dir=Path("runs/m"), resume=True, **TINY))
    assert snapshot(repo) == shipped


def test_resume_names_where_runs_for_an_outside_out_were_kept_before(made, tmp_path, monkeypatch):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere" / "m"
    (repo / "runs").mkdir(parents=True)
    out, run = copy_of(made, tmp_path)
    elsewhere.parent.mkdir()
    out.rename(elsewhere)
    run.rename(repo / "runs" / "m")  # where runs/NAME used to be, whatever --out was
    trainer_json = repo / "runs" / "m" / "trainer.json"
    trainer = json.loads(trainer_json.read_text())
    trainer["checkpoint"] = {"path": str(elsewhere), "from_run_dir": str(elsewhere)}
    trainer_json.write_text(json.dumps(trainer))
    monkeypatch.chdir(repo)
    with pytest.raises(TrainingError) as refused:
        train(tiny_args(elsewhere, run_dir=None, resume=True, **TINY))
    assert str(refused.value) == (
        f"cannot resume: {elsewhere.parent / 'runs' / 'm'} holds no run; {elsewhere}'s run is "
        "in runs/m: resume it with --run-dir runs/m"
    )


def test_init_from_reads_an_existing_folder_without_claiming_it(made, tmp_path):
    source, _ = copy_of(made, tmp_path)
    before = snapshot(source)
    args = tiny_args(tmp_path / "new", run_dir=tmp_path / "new-run", init_from=source, **TINY)
    assert train(args) == 0
    assert snapshot(source) == before
    card = json.loads((args.out / "card.json").read_text())
    assert card["initialised_from"]["path"] == str(source)


def test_the_cli_refuses_with_exit_code_2_and_overwrite_goes_through(made, tmp_path, capsys):
    out, run = copy_of(made, tmp_path)
    before = snapshot(tmp_path)
    cmd = ["train", "--out", str(out), "--run-dir", str(run), "--steps", "2",
           "--batch-size", "8", "--eval-images", "64"]  # fmt: skip
    capsys.readouterr()  # whatever came before
    assert main(cmd) == 2
    assert capsys.readouterr().err == (
        f"latent-explorer train: error: {out} already holds a checkpoint; {run} already holds "
        f"the run of {out.resolve()} (step 4): continue it with --resume, choose another --out, "
        "or pass --overwrite to replace both\n"
    )
    assert snapshot(tmp_path) == before
    assert main([*cmd, "--overwrite"]) == 0
    assert json.loads((out / "card.json").read_text())["steps"] == 2


# --- the VAE-GAN's loop takes the same check ---------------------------------------------------

GAN = dict(kind="vaegan", steps=2, batch_size=8, eval_images=64, log_every=1)


def test_a_vaegan_run_refuses_what_it_did_not_make(tmp_path, capsys):
    gan = tiny_args(tmp_path / "gan", run_dir=tmp_path / "gan-run", **GAN)
    assert train(gan) == 0
    before = snapshot(tmp_path)
    # a new VAE-GAN run over it
    with pytest.raises(
        TrainingError, match=f"^{re.escape(str(gan.out))} already holds a checkpoint; .*--overwrite"
    ):
        train(tiny_args(gan.out, run_dir=gan.run_path, **GAN))
    # its run resumed for another checkpoint folder (the loop is chosen by the run folder)
    other = tmp_path / "other"
    with pytest.raises(
        TrainingError, match=re.escape(f"cannot resume: {gan.run_path} holds the run of")
    ):
        train(tiny_args(other, run_dir=gan.run_path, resume=True, **GAN))
    # and from the command line
    cmd = ["train", "--kind", "vaegan", "--out", str(other), "--run-dir", str(gan.run_path),
           "--steps", "2", "--batch-size", "8"]  # fmt: skip
    capsys.readouterr()  # the progress bars so far
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"latent-explorer train: error: {gan.run_path} already holds the run")
    assert f"not of {other}" in err and "--overwrite" in err
    assert snapshot(tmp_path) == before and not other.exists()
    # its own --out resumes it
    assert train(tiny_args(gan.out, run_dir=gan.run_path, resume=True, **{**GAN, "steps": 3})) == 0
    assert json.loads((gan.run_path / "trainer.json").read_text())["step"] == 3
