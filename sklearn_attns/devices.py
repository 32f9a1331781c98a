"""Where the networks run: device names, and what moves when a fitted solver is pickled.

Policy: ``device="auto"`` picks CUDA when present, without initialising the CUDA driver
(so processes forked later can still use the GPU); a model fitted on a GPU loads on a
CPU-only machine with a warning. States stay float64 on the chosen device.
"""

import os
import warnings

import torch

__all__ = ["resolve_device", "DEVICE_NAMES"]

DEVICE_NAMES = "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device"


def is_device_name(device):
    """Whether ``device`` names a CPU or CUDA device, or "auto", syntactically (not whether
    this machine has it)."""
    if isinstance(device, str) and device == "auto":
        return True
    if not isinstance(device, (str, torch.device)):
        return False
    try:
        return torch.device(device).type in ("cpu", "cuda")
    except (RuntimeError, TypeError):
        return False


def resolve_device(device):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` into a device.

    Raises ``ValueError`` for an unknown name or for CUDA on a machine without it.

    Examples
    --------
    >>> from sklearn_attns.devices import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if _cuda_available_without_init() else "cpu")
    if not is_device_name(device):
        raise ValueError(f"device must be {DEVICE_NAMES} of a CPU or CUDA device, got {device!r}.")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available on this machine; "
                             "use device='cpu' or 'auto'.")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present.")
    return resolved


def loadable_device(device):
    """The device a stored model goes to here: its own, or the CPU (with a warning) when it
    was fitted on CUDA and this machine has none."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"this model was fitted on {device} but CUDA is not available here; "
                      "it is loaded on the CPU.",
                      UserWarning, stacklevel=4)
        return torch.device("cpu")
    return device


def rows_in_memory(device, bytes_per_row, share=4):
    """Rows of a batch whose buffers take at most ``1 / share`` of ``device``'s free memory
    (a CUDA device; at least one row)."""
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, int(free // share // bytes_per_row))


def _cuda_available_without_init():
    """``torch.cuda.is_available()`` through NVML, which leaves the CUDA driver uninitialised,
    so that processes forked afterwards (joblib, multiprocessing) can still use the GPU."""
    previous = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    try:
        return torch.cuda.is_available()
    finally:
        if previous is None:
            del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        else:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = previous
