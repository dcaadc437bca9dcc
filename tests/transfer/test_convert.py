"""protperf.transfer.convert: the teacher shares the student's weights, the output is an
ordinary checkpoint every command takes, causal sources convert too."""

from __future__ import annotations

import torch

from protperf.attention import AttentionConfig
from protperf.checkpoint.load import load_model, read_checkpoint
from protperf.data.config import DataConfig
from protperf.model.transformer import ProteinLanguageModel
from protperf.transfer import convert
from protperf.transfer.conversion import with_attention
from protperf.transfer.converter import CONVERT_KEY
from protperf.transfer.finetune import trainable_parameters
from protperf.transfer.settings import ConvertSettings
from protperf.transfer.teacher import exact_teacher
from tests.transfer.conftest import sharp_exact_config, sharp_weights

DATA = DataConfig(max_length=48, batch_size=4, num_workers=0)
QUICK = {"max_steps": 3, "val_check_interval": 2, "limit_val_batches": 2}


def test_teacher_is_the_exact_model_sharing_all_but_the_trained_weights():
    torch.manual_seed(0)
    exact = ProteinLanguageModel(sharp_exact_config(), causal=False).eval()
    sharp_weights(exact)
    student = with_attention(exact, AttentionConfig(kind="favor_softmax", num_features=8))
    teacher, frozen = exact_teacher(student, trainable_parameters(student, "qk"))
    ids = torch.randint(4, 24, (2, 12))
    with torch.no_grad():
        assert torch.equal(teacher(ids), exact(ids))
        assert not torch.allclose(student(ids), exact(ids), atol=1e-3)  # student: a Performer
    own = {id(p) for p in frozen.parameters()}
    shared = {id(p) for p in student.parameters()}
    for name, parameter in teacher.named_parameters():
        is_qk = ".q_proj." in name or ".k_proj." in name
        assert (id(parameter) in own) == is_qk and (id(parameter) in shared) != is_qk, name
    assert len(own) == 4 * 2  # q and k weight + bias of 2 layers: the only copies
    with torch.no_grad():  # training the student's q/k leaves the teacher exact
        for parameter in trainable_parameters(student, "qk"):
            parameter.add_(1.0)
        assert torch.equal(teacher(ids), exact(ids))


def test_converted_checkpoint_loads_everywhere(exact_sources, tmp_path):
    out = tmp_path / "performer.ckpt"
    result = convert(exact_sources["mlm"], out, DATA, {"num_features": 16},
                     ConvertSettings(warmup_steps=1, target_recovery=None), trainer=QUICK)
    assert result.steps == 3 and result.output == str(out)
    assert result.exact.step == 0 and result.zero_shot.step == 0 and result.best is not None
    saved = read_checkpoint(out)
    assert saved["hyper_parameters"]["model"]["attention"]["kind"] == "favor_softmax"
    assert saved["hyper_parameters"]["model"]["attention"]["num_features"] == 16
    assert saved["hyper_parameters"]["model"]["attention"]["redraw_interval"] == 0  # kept
    assert saved["hyper_parameters"]["model"]["dim"] == 32  # the source's architecture
    assert saved[CONVERT_KEY]["source"] == str(exact_sources["mlm"])
    model = load_model(out)
    source = load_model(exact_sources["mlm"]).state_dict()
    changed = {name for name, tensor in model.state_dict().items()
               if name not in source or not torch.equal(tensor, source[name])}
    # the random features are new, q/k are those of the best step (maybe step 0); every
    # other tensor is the source's
    trained = {f"blocks.{i}.attn.{name}" for i in range(2) for name in (
        "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")}
    features = {f"blocks.{i}.attn.feature_projection" for i in range(2)}
    assert features <= changed <= features | trained
    assert (changed == features) == (result.best.step == 0)
    assert model.blocks[0].attn.random_projection.shape == (16, 16)


def test_causal_source_converts_to_a_causal_performer(exact_sources, tmp_path):
    out = tmp_path / "causal.ckpt"
    result = convert(exact_sources["clm"], out, DATA, {"kind": "favor_relu", "num_features": 8},
                     ConvertSettings(warmup_steps=1, polish_steps=1, target_recovery=None),
                     trainer=QUICK)
    assert result.steps == 3
    model = load_model(out)
    assert model.causal and model.config.attention.kind == "favor_relu"
    ids = torch.randint(4, 24, (1, 6))
    caches = model.new_caches(1, 6)
    with torch.no_grad():
        stepped = [model.step(ids[:, i], caches, i) for i in range(6)]
        torch.testing.assert_close(torch.stack(stepped, 1), model(ids), atol=1e-4, rtol=1e-4)


def test_export_directory_source(exact_sources, tmp_path):
    from protperf import export_model

    directory = export_model(exact_sources["mlm"], tmp_path / "exported")
    result = convert(directory, tmp_path / "out.ckpt", DATA, {"num_features": 8},
                     ConvertSettings(target_recovery=None),
                     trainer={"max_steps": 1, "val_check_interval": 1, "limit_val_batches": 1})
    assert result.steps == 1
    assert load_model(tmp_path / "out.ckpt").config.attention.num_features == 8


def test_a_stop_signal_writes_no_output_and_the_run_resumes(exact_sources, tmp_path):
    """SLURM's time-limit signal mid-run: last.ckpt is saved, the output is not written; the
    resumed run finishes and writes it."""
    import signal

    import lightning.pytorch as pl

    from protperf.runtime.preemption import ResumeCheckpoint

    class SignalAtStep(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 2:
                resume.received = signal.SIGUSR1

    resume = ResumeCheckpoint(tmp_path / "checkpoints")
    out = tmp_path / "out.ckpt"
    settings = ConvertSettings(warmup_steps=1, target_recovery=None)
    result = convert(exact_sources["mlm"], out, DATA, {"num_features": 8}, settings,
                     trainer={**QUICK, "max_steps": 4, "callbacks": [resume, SignalAtStep()]})
    assert result.stopped and result.steps == 3 and not out.exists()
    assert resume.path.is_file()
    result = convert(exact_sources["mlm"], out, DATA, {"num_features": 8}, settings,
                     trainer={**QUICK, "max_steps": 4}, ckpt_path=str(resume.path))
    assert not result.stopped and result.steps == 4 and out.is_file()
    assert result.exact is not None and result.zero_shot is not None  # kept in last.ckpt


def test_qk_features_writes_the_trained_projection_as_an_ordinary_buffer(exact_sources,
                                                                           tmp_path):
    import lightning.pytorch as pl

    key = "blocks.0.attn.feature_projection"
    seen = {}

    class Capture(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["drawn"] = pl_module.model.state_dict()[key].clone()

        def on_train_end(self, trainer, pl_module):
            parameters = dict(pl_module.model.named_parameters())
            seen["trained"] = parameters[key].detach().clone()  # a parameter while training
            seen["best"] = pl_module.best_state[key].clone()

    out = tmp_path / "learned.ckpt"
    settings = ConvertSettings(warmup_steps=1, trainable="qk_features", target_recovery=None)
    convert(exact_sources["mlm"], out, DATA, {"kind": "favor_relu", "num_features": 8},
            settings, trainer={**QUICK, "callbacks": [Capture()]})
    assert not torch.equal(seen["trained"], seen["drawn"])  # the features trained
    model = load_model(out)
    assert key in dict(model.named_buffers()) and not model.state_dict()[key].requires_grad
    torch.testing.assert_close(model.state_dict()[key], seen["best"], rtol=0, atol=0)
    assert read_checkpoint(out)[CONVERT_KEY]["settings"]["trainable"] == "qk_features"
