"""Writes the PyTorch checkpoints that tests/it/torch_file.rs reads.

Run once, from the repository root, with the project's PyTorch (2.11):

    .venv/bin/python crates/twinsim-data/tests/data/make_torch_files.py

The tests read the committed files and never run this script: rerun it only
to change them, and update the expected values in tests/it/torch_file.rs.

state_dict_zip.pth and state_dict_legacy.pth hold the same state dict in
torch's two layouts (torch.save with and without
_use_new_zipfile_serialization): that of a Conv2d and a BatchNorm2d, with its
_metadata and an int64 scalar (num_batches_tracked), plus two views of one
storage (a row slice, at an offset, and a transpose), a channels-last tensor
and one tensor of each other element type. Every value is easy to state.

The other files are each wrong in one way:
  checkpoint.pth          a training checkpoint keeping its weights under
                          "state_dict" beside an int and a float (readable)
  list.pth                a list of tensors, not a dict
  not_a_tensor.pth        a dict holding an int beside a tensor
  shared.pth              100 names for one tensor: more elements than bytes
  deflated.pth            a zip checkpoint whose 4 MB storage is compressed
                          into a few KB
  huge_storage_zip.pth    a storage declared with 2^40 elements, of which the
  huge_storage_legacy.pth file holds 16 bytes, in both layouts
"""

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent

HUGE = 1 << 40


def state_dict():
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, kernel_size=2), torch.nn.BatchNorm2d(3))
    with torch.no_grad():
        net[0].weight.copy_(torch.arange(24.0).reshape(3, 2, 2, 2))
        net[0].bias.copy_(torch.arange(3.0) - 1)
        net[1].running_mean.copy_(torch.arange(3.0) / 4)
        net[1].num_batches_tracked.fill_(7)
    sd = net.state_dict()
    assert hasattr(sd, "_metadata")
    shared = torch.arange(12.0).reshape(3, 4)
    sd["rows"] = shared[1:]
    sd["transposed"] = shared.t()
    sd["channels_last"] = (
        torch.arange(24.0).reshape(1, 2, 3, 4).contiguous(memory_format=torch.channels_last)
    )
    sd["half"] = torch.tensor([-1.5, 0.25, 65504.0, 2.0**-24], dtype=torch.float16)
    sd["bfloat16"] = torch.tensor([1.0, -0.5, 3.0], dtype=torch.bfloat16)
    sd["double"] = torch.tensor([0.1, -2.5], dtype=torch.float64)
    sd["int32"] = torch.tensor([-3, 7], dtype=torch.int32)
    assert sd["rows"].storage_offset() == 4
    assert sd["transposed"].stride() == (1, 4)
    assert sd["channels_last"].stride() == (24, 1, 8, 2)
    return sd


def save_zip(obj, name):
    torch.save(obj, OUT / name)


def save_legacy(obj, name):
    torch.save(obj, OUT / name, _use_new_zipfile_serialization=False)


def deflated(name):
    """A zip checkpoint of a 1-element view of 2^20 zeros, recompressed."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1 << 20)[:1]}, buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(OUT / name, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))


class FakeStorage:
    """A storage that is only its persistent id."""


class FakeTensor:
    """A one-element tensor of a FakeStorage, pickled as torch pickles tensors."""

    def __reduce__(self):
        args = (FakeStorage(), 0, (1,), (1,), False, collections.OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


class HugePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", torch.FloatStorage, "0", "cpu", HUGE)
        return None


def huge_pickle():
    buf = io.BytesIO()
    HugePickler(buf, protocol=2).dump({"w": FakeTensor()})
    return buf.getvalue()


def huge_zip(name):
    with zipfile.ZipFile(OUT / name, "w", zipfile.ZIP_STORED) as z:
        z.writestr("huge/data.pkl", huge_pickle())
        z.writestr("huge/byteorder", "little")
        z.writestr("huge/data/0", bytes(16))


def huge_legacy(name):
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    head = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, sys_info))
    tail = pickle.dumps(["0"], protocol=2) + struct.pack("<q", HUGE) + bytes(16)
    (OUT / name).write_bytes(head + huge_pickle() + tail)


def main():
    sd = state_dict()
    save_zip(sd, "state_dict_zip.pth")
    save_legacy(sd, "state_dict_legacy.pth")
    save_zip({"epoch": 3, "best_acc": 0.75, "state_dict": {"w": torch.tensor([1.0, 2.0])}}, "checkpoint.pth")
    save_zip([torch.zeros(2)], "list.pth")
    save_zip({"w": torch.zeros(2), "epoch": 3}, "not_a_tensor.pth")
    t = torch.arange(64.0)
    save_zip({f"t{i}": t for i in range(100)}, "shared.pth")
    assert (OUT / "shared.pth").stat().st_size < 6400
    deflated("deflated.pth")
    huge_zip("huge_storage_zip.pth")
    huge_legacy("huge_storage_legacy.pth")
    for f in sorted(OUT.glob("*.pth")):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main()
