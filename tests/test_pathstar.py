"""Tests of ntp_lib.pathstar and the path-star experiment (Part II)."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from ntp_lib.experiments import main as experiments_main
from ntp_lib.gpt import GPT, IGNORE_INDEX, GPTConfig
from ntp_lib.pathstar import (
    PATHSTAR_SCALES,
    PathStar,
    PathStarConfig,
    check_model,
    clever_hans_accuracy,
    edge_following_rate,
    evaluate,
    exact_match,
    exact_match_given_first,
    indecipherable_accuracy,
    mask_target_inputs,
    per_position_accuracy,
    run_pathstar,
)
from ntp_lib.recorded import load_recorded_file, recorded_files

TOOLS = Path(__file__).resolve().parents[1] / "tools"
EXAMPLE = "32,3|16,12|3,19|32,34|34,6|6,16|19,47|47,28/32,12=32,34,6,16,12"


def test_paper_example_round_trips_and_validates():
    task = PathStar(2, 5, 50)
    ids = task.encode(EXAMPLE)
    assert len(ids) == task.seq_len == 32 and task.prefix_len == 27
    assert ids[2] == 50 and ids[26] == 51 and ids[23] == 52  # | = /
    assert task.decode(ids) == EXAMPLE
    task.validate(EXAMPLE)
    assert task.is_valid(EXAMPLE)
    assert not task.is_valid(EXAMPLE.replace("=32,34,6,16,12", "=32,3,19,47,28"))


@pytest.mark.parametrize("d,l,N,prefix", [(2, 5, 50, 27), (5, 5, 50, 63), (2, 3, 50, 15), (3, 3, 50, 21),
                                          (5, 3, 50, 33)])
def test_sizes_match_the_paper(d, l, N, prefix):
    task = PathStar(d, l, N)
    assert task.prefix_len == prefix and task.vocab_size == N + 4
    data = task.sample(50, seed=1)
    assert data["tokens"].shape == (50, prefix + l)
    for text in task.sample_text(20, seed=2):
        task.validate(text)


def test_sampling_is_uniform_enough_and_deterministic():
    task = PathStar(2, 5, 50)
    a, b = task.sample(20_000, seed=0), task.sample(20_000, seed=0)
    assert np.array_equal(a["tokens"], b["tokens"])
    labels = a["edges"].reshape(len(a["edges"]), -1)
    assert all(len(set(row)) == 9 for row in labels[:200])  # 1 + d(l-1) distinct labels
    assert abs(np.bincount(a["source"], minlength=50).std() / 400 - 0) < 0.2
    # the goal edge is not always in the same place of the shuffled list
    first_edge_on_goal_arm = (a["edges"][:, 0, 1][:, None] == a["arms"][:, 0]).any(1).mean()
    assert 0.4 < first_edge_on_goal_arm < 0.6


@pytest.mark.parametrize("kwargs,match", [
    (dict(degree=2, path_len=5, num_nodes=8), "need num_nodes >= 1 \\+ degree\\*\\(path_len-1\\) = 9"),
    (dict(degree=0, path_len=5, num_nodes=50), "degree must be an int >= 1"),
    (dict(degree=2, path_len=1, num_nodes=50), "path_len must be an int >= 2"),
])
def test_impossible_graphs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PathStar(**kwargs)


def test_bad_text_and_ids_raise():
    task = PathStar(2, 5, 50)
    with pytest.raises(ValueError, match="node id 77 out of range"):
        task.encode("77,3|")
    with pytest.raises(ValueError, match="cannot parse"):
        task.encode("1;2")
    with pytest.raises(ValueError, match="token id 60 out of range"):
        task.decode([1, 60])
    with pytest.raises(ValueError, match="expected 32 tokens"):
        task.validate("1,2/1,2=1,2")
    with pytest.raises(ValueError, match="objective must be one of"):
        task.make_dataset(task.sample(2)["tokens"], "sideways")


def test_objectives_label_only_the_target():
    task = PathStar(2, 3, 20)
    tokens = task.sample(4, seed=0)["tokens"]
    P, l = task.prefix_len, task.path_len
    x, y = task.make_dataset(tokens, "standard")
    assert x.shape == y.shape == (4, P + l - 1)
    assert (y[:, :P - 1] == IGNORE_INDEX).all() and (y[:, P - 1:] == torch.as_tensor(tokens[:, P:])).all()
    xt, yt = task.make_dataset(tokens, "teacherless")
    assert (xt[:, P:] == task.DOLLAR).all() and torch.equal(yt, y)
    xr, yr = task.make_dataset(tokens, "reverse")
    assert (yr[:, P - 1:] == torch.as_tensor(tokens[:, P:][:, ::-1].copy())).all()
    g = torch.Generator().manual_seed(0)
    assert (mask_target_inputs(task, x, 1.0, g)[:, P:] == task.DOLLAR).all()
    assert torch.equal(mask_target_inputs(task, x, 0.0, g), x)
    with pytest.raises(ValueError, match="mask probability"):
        mask_target_inputs(task, x, 1.5, g)


def test_vocabulary_mismatch_raises():
    task = PathStar(2, 3, 20)
    model = GPT(GPTConfig(vocab_size=30, block_size=20, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="does not match the tokenizer"):
        check_model(model, task)


class Oracle(torch.nn.Module):
    """A 'model' that knows the answer: logits put all mass on the true next token (for metric tests)."""

    def __init__(self, task, data, cheat_only=False):
        super().__init__()
        self.task, self.cheat_only = task, cheat_only
        self.config = type("C", (), {"vocab_size": task.vocab_size})()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.paths = {tuple(r[:task.prefix_len].tolist()): r[task.prefix_len:] for r in data["tokens"]}

    def forward(self, idx, targets=None):
        B, T = idx.shape
        P = self.task.prefix_len
        logits = torch.zeros(B, T, self.task.vocab_size)
        for b in range(B):
            path = self.paths[tuple(idx[b, :P].tolist())]
            E = self.task.num_edges
            child_of = {int(idx[b, 3 * k]): int(idx[b, 3 * k + 1]) for k in range(E)}  # this graph's edges
            for t in range(P - 1, T):
                k = t - P + 1  # target position index (0-based) predicted at input t
                if self.cheat_only and k >= 2:  # follow the edge from the previous (input) node
                    nxt = child_of.get(int(idx[b, t]), 0)
                elif self.cheat_only and k == 1:
                    nxt = 0  # cannot decipher v1
                else:
                    nxt = int(path[k])
                logits[b, t, nxt] = 1.0
        return logits, None


def test_metrics_on_oracles():
    task = PathStar(2, 5, 30)
    data = task.sample(40, seed=3)
    x, y = task.make_dataset(data["tokens"], "standard")
    oracle = Oracle(task, data)
    assert exact_match(oracle, task, x, y) == 1.0
    assert np.allclose(per_position_accuracy(oracle, task, x, y, "generate"), 1.0)
    cheat = Oracle(task, data, cheat_only=True)
    assert clever_hans_accuracy(cheat, task, x, y) == 1.0
    assert clever_hans_accuracy(cheat, task, x, y, include_goal=False) == 1.0
    assert indecipherable_accuracy(cheat, task, x, y) < 0.2
    assert exact_match(cheat, task, x, y) < 0.2
    assert exact_match_given_first(cheat, task, x, y) == 1.0
    assert edge_following_rate(cheat, task, data) == 1.0
    assert edge_following_rate(oracle, task, data) == 0.0
    metrics = evaluate(cheat, task, x, y)
    assert metrics["clever_hans_accuracy"] == 1.0 and metrics["exact_match"] < 0.2


def test_run_pathstar_small_gpt2_and_mamba():
    for kind in ("gpt", "gpt2", "mamba"):
        out = run_pathstar(objective="standard", model=kind, degree=2, path_len=3, num_nodes=10, layers=1,
                           width=16, train_size=64, test_size=16, batch_size=32, steps=2, evals=1)
        for key in ("train_exact_match", "test_exact_match", "clever_hans_accuracy", "indecipherable_accuracy"):
            assert 0.0 <= out[key] <= 1.0


def test_run_pathstar_tracks_edge_following_where_it_is_defined():
    small = dict(objective="standard", degree=2, num_nodes=12, layers=1, width=16, train_size=64, test_size=16,
                 batch_size=32, steps=4, evals=2)
    out = run_pathstar(path_len=4, **small)
    assert 0.0 <= out["edge_following_rate"] <= 1.0
    assert all(0.0 <= h["test_edge_following_rate"] <= 1.0 for h in out["history"])
    assert run_pathstar(path_len=3, **small)["edge_following_rate"] is None   # no position 3 to follow to


def test_cli_prints_one_json_line(capsys):
    experiments_main(["pathstar", "--objective", "teacherless", "--path-len", "3", "--num-nodes", "12",
                      "--train-size", "64", "--test-size", "16", "--steps", "2", "--evals", "1"])
    out = json.loads(capsys.readouterr().out.strip())
    assert {"train_exact_match", "test_exact_match", "clever_hans_accuracy", "indecipherable_accuracy",
            "command", "machine", "ntp_lib_version"} <= set(out)
    # The command records the arguments actually parsed, also when called as main([...]).
    assert out["command"] == ("python -m ntp_lib.experiments pathstar --objective teacherless --path-len 3 "
                              "--num-nodes 12 --train-size 64 --test-size 16 --steps 2 --evals 1")


def test_cli_bad_graph_exits_with_message(capsys):
    with pytest.raises(SystemExit) as err:
        experiments_main(["pathstar", "--num-nodes", "5", "--steps", "1"])
    assert err.value.code == 2
    assert "need num_nodes >= 1 + degree*(path_len-1) = 9" in capsys.readouterr().err


def _recorded_commands():
    cmds = []
    for f in recorded_files("pathstar", "runs_*.json"):
        for name, result in load_recorded_file("pathstar", f).items():
            cmds.append(pytest.param(result["command"], id=f"{f.removesuffix('.json')}:{name}"))
    return cmds


@pytest.mark.parametrize("command", _recorded_commands()[:40])
def test_recorded_commands_still_run(command):
    """Each recorded GPU command, rerun on the CPU for 2 steps on a tiny data set (the code path cannot rot)."""
    argv = shlex.split(command)[3:]  # drop "python -m ntp_lib.experiments"
    overrides = {"--device": "cpu", "--steps": "2", "--train-size": "64", "--test-size": "16", "--evals": "1",
                 "--layers": "1", "--width": "16", "--heads": "1"}
    for i, arg in enumerate(argv):
        if arg in overrides:
            argv[i + 1] = overrides.pop(arg)
    for key, value in overrides.items():
        argv += [key, value]
    assert experiments_main(argv) == 0


@pytest.mark.parametrize("command", _recorded_commands())
def test_recorded_configs_are_what_their_commands_build(command):
    """PathStarConfig's defaults are the ones every recorded run was made with: each recorded command,
    parsed by today's CLI, builds the configuration the run recorded."""
    from ntp_lib.experiments import build_parser
    from ntp_lib.experiments.pathstar import config_from_args

    name = command.split()[3:]
    recorded = next(r["config"] for f in recorded_files("pathstar", "runs_*.json")
                    for r in load_recorded_file("pathstar", f).values() if r["command"] == command)
    cfg = config_from_args(build_parser().parse_args(name)).to_dict()
    if cfg["objective"] != "masked":
        cfg["mask_prob"] = None
    assert {k: cfg[k] for k in recorded} == recorded


def test_pathstar_config_is_one_place():
    """The CLI's flags are PathStarConfig's fields; bad values and unknown keys are refused."""
    from ntp_lib.experiments import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "experiment").choices["pathstar"]
    flags = {a.dest for a in sub._actions} - {"help", "scale", "threads"}
    assert flags == set(PathStarConfig().to_dict())
    assert PathStarConfig.at_scale("cpu") == PathStarConfig(**{**PathStarConfig().to_dict(), **PATHSTAR_SCALES["cpu"]})
    assert str(PathStarConfig.at_scale("paper").task) == "G(2,5), N=50"
    paper = PathStarConfig.at_scale("paper")   # the paper's recipe: README lr, batch 256, constant rate, 500 epochs
    assert (paper.layers, paper.width, paper.heads, paper.batch_size, paper.lr, paper.min_lr_ratio, paper.epochs) == (
        6, 384, 6, 256, 1e-4, 1.0, 500)
    with pytest.raises(ValueError, match="unknown PathStarConfig keys"):
        PathStarConfig.from_dict({"path_length": 5})
    with pytest.raises(ValueError, match="SCALE must be one of"):
        PathStarConfig.at_scale("gpu")
    for bad, message in ((dict(lr=0.0), "lr must be"), (dict(mask_prob=1.5), "mask_prob must be"),
                         (dict(min_lr_ratio=1.5), "min_lr_ratio must be"),
                         (dict(objective="forward"), "objective must be"), (dict(train_size=0), "train_size"),
                         (dict(device="tpu"), "device must be"), (dict(num_nodes=5), "too small")):
        with pytest.raises(ValueError, match=message):
            PathStarConfig(**bad)


def test_masked_dataset_is_teacher_forcing_with_dollars():
    task = PathStar(2, 4, 20)
    tokens = task.sample(64, seed=0)["tokens"]
    x_std, y_std = task.make_dataset(tokens, "standard")
    x, y = task.make_dataset(tokens, "masked", mask_prob=0.5, generator=torch.Generator().manual_seed(1))
    P = task.prefix_len
    assert torch.equal(y, y_std) and torch.equal(x[:, :P], x_std[:, :P])
    masked = x[:, P:] == task.DOLLAR
    assert torch.equal(x[:, P:][~masked], x_std[:, P:][~masked]) and 0.3 < masked.float().mean() < 0.7
    all_masked = task.make_dataset(tokens, "masked", mask_prob=1.0)[0]
    assert torch.equal(all_masked, task.make_dataset(tokens, "teacherless")[0])


def test_benchmark_script_runs(tmp_path):
    """The recorded benchmark's code path (tools/pathstar_benchmark.py) still runs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ps_benchmark", TOOLS / "pathstar_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(str(tmp_path / "bench.json"))
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["tokens_per_s"] > 0 and 0 < result["fraction_of_matmul_peak"] < 5


def test_run_pathstar_fine_tunes_a_pretrained_model_from_a_folder(tmp_path):
    """The pretrained path (model='pretrained'), offline: a tiny GPT-2 and a tokenizer saved to a folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.test_models import _word_level_tokenizer

    task = PathStar(2, 3, 10)
    tokenizer = _word_level_tokenizer(["x", *task.symbols])
    tokenizer.save_pretrained(tmp_path)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=1,
                               n_head=2)).save_pretrained(tmp_path)
    out = run_pathstar(model="pretrained", pretrained=str(tmp_path), degree=2, path_len=3, num_nodes=10,
                       train_size=64, test_size=16, batch_size=32, steps=2, evals=1)
    assert 0.0 <= out["test_exact_match"] <= 1.0 and out["num_params"] > 0
    for bad in (dict(model="pretrained"), dict(pretrained=str(tmp_path))):
        with pytest.raises(ValueError, match="goes with model='pretrained' only"):
            PathStarConfig(**bad)


def test_every_recorded_run_is_shown_in_a_chapter():
    """A recorded run that no chapter shows is a result hidden from the reader: each run is named in a Part II
    notebook, or its whole file is loaded there (``load_recorded_file("pathstar", NAME)``) and shown."""
    sources = "\n".join(
        "".join(cell["source"]) for nb in sorted((Path(__file__).resolve().parents[1] / "chapters" / "02-pitfalls")
                                                 .glob("*.ipynb"))
        for cell in json.loads(nb.read_text())["cells"] if cell["cell_type"] == "code")
    hidden = [f"{f}:{name}" for f in recorded_files("pathstar", "runs_*.json")
              if f'load_recorded_file("pathstar", "{f}")' not in sources
              for name in load_recorded_file("pathstar", f) if f'"{name}"' not in sources]
    assert not hidden, f"recorded runs no chapter shows: {hidden}"


def test_run_pathstar_resumes_from_its_checkpoint(tmp_path):
    """A run given a checkpoint file saves its state; started again, it resumes there (here: at the end)."""
    ckpt = tmp_path / "run.pt"
    small = dict(objective="standard", degree=2, path_len=4, num_nodes=12, layers=1, width=16, train_size=64,
                 test_size=16, batch_size=32, steps=4, evals=2, checkpoint=str(ckpt))   # l = 4: no NaN metric
    first = run_pathstar(**small)
    assert torch.load(ckpt, weights_only=False)["step"] == 4
    again = run_pathstar(**small)
    assert again["history"] == first["history"] and again["test_exact_match"] == first["test_exact_match"]
