"""Model files: architecture, weights and training state in a ``.npz`` that loads without code.

Format ("fastnn-model", version 1)
----------------------------------
A NumPy ``.npz`` archive (``numpy.savez``, uncompressed) holding only numeric arrays:

``__header__``
    uint8 array of UTF-8 JSON: ``{"format": "fastnn-model", "format_version": 1,
    "fastnn_version": ..., "config": net.get_config(), "optimizer": {...}, "schedule": {...},
    "preprocessing": {...}, "metadata": {...}}``. Each state section holds a ``"class"``/
    ``"config"`` description (where known) and the state's scalar entries (int, float, str,
    bool, None) under ``"scalars"``.
``net/<key>``, ``optimizer/<key>``, ``schedule/<key>``, ``preprocessing/<key>``
    The arrays of ``net.state_dict()`` (weights and buffers such as batch-norm running
    statistics) and of the flat state dicts.

Loading uses ``numpy.load(allow_pickle=False)`` and rebuilds the network through the closed
layer registry of ``Sequential.from_config``: a model file never executes code (compare
PyTorch's ``weights_only`` loading and Keras's ``safe_mode``). Files are written atomically:
a temporary file in the destination folder, fsync, then ``os.replace``.
"""
import collections
import contextlib
import json
import os
import tempfile
import zipfile

import numpy as np

from fastnn import _json, optimizers, schedules
from fastnn._json import to_json_data
from fastnn._version import __version__
from fastnn.network import Sequential

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: unique temporary names only
    fcntl = None

FORMAT_NAME = "fastnn-model"
FORMAT_VERSION = 1
HEADER_KEY = "__header__"
SECTIONS = ("net", "optimizer", "schedule", "preprocessing")

#: What ``load`` returns. ``optimizer_config``/``schedule_config`` describe the objects whose
#: state was saved (``{"class": ..., "config": ...}``) or are None.
Model = collections.namedtuple(
    "Model", ["net", "optimizer_state", "schedule_state", "preprocessing", "metadata",
              "optimizer_config", "schedule_config", "format_version", "fastnn_version"])


class ModelFileError(ValueError):
    """A file is not a readable fastnn model: truncated, corrupted, foreign, or pickle-bearing."""


def _describe(obj):
    """``{"class": name, "config": obj.get_config()}`` for an optimizer or schedule."""
    if obj is None:
        return None
    config = obj.get_config() if hasattr(obj, "get_config") else {}
    return {"class": type(obj).__name__, "config": to_json_data(config, "config")}



def _split_state(state, section):
    """A flat state dict → (arrays for the archive, JSON scalars for the header)."""
    if state is None:
        return {}, None
    if not isinstance(state, dict):
        raise TypeError(f"{section} state must be a dict, got {type(state).__name__}")
    arrays, scalars = {}, {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"{section} state keys must be str, got {key!r}")
        if isinstance(value, (np.ndarray, np.generic)):
            value = np.asarray(value)
            if value.dtype.kind not in "biufc":
                raise TypeError(f"{section} state[{key!r}] has dtype {value.dtype}; "
                                "only numeric arrays can be stored")
            arrays[f"{section}/{key}"] = value
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[key] = value
        else:
            raise TypeError(f"{section} state[{key!r}] is a {type(value).__name__}; a state dict "
                            "holds only ndarray, int, float, str, bool or None values")
    return arrays, scalars


def save(path, net, *, optimizer=None, schedule=None, preprocessing=None, metadata=None):
    """Write ``net`` (and optionally its training state) to the model file ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, written as given (no suffix is added; ``.npz`` is conventional).
    net : fastnn.Sequential
    optimizer, schedule : objects with ``state_dict()``, optional
        Their state (and ``get_config()``) is stored so that training can resume exactly.
    preprocessing : dict, optional
        Flat state of the input preprocessing (e.g. ``Preprocessor.state_dict()``).
    metadata : dict, optional
        JSON-serialisable extra information (dataset, history, command line...).

    The file is replaced atomically: readers see the old file or the complete new one.
    """
    if not isinstance(net, Sequential):
        raise TypeError(f"net must be a fastnn Sequential, got {type(net).__name__}")
    path = os.fspath(path)
    arrays = {f"net/{key}": value for key, value in net.state_dict().items()}
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "fastnn_version": __version__, "config": to_json_data(net.get_config(), "config"),
              "metadata": to_json_data(metadata or {}, "metadata")}
    states = {"optimizer": optimizer.state_dict() if optimizer is not None else None,
              "schedule": schedule.state_dict() if schedule is not None else None,
              "preprocessing": preprocessing}
    for section, state in states.items():
        section_arrays, scalars = _split_state(state, section)
        arrays.update(section_arrays)
        header[section] = None if scalars is None else {"scalars": scalars}
    for section, obj in (("optimizer", optimizer), ("schedule", schedule)):
        if obj is not None:
            header[section].update(_describe(obj))
    arrays[HEADER_KEY] = np.frombuffer(_json.dumps(header, "header").encode("utf-8"), dtype=np.uint8)
    _write_atomic(path, arrays)


def _umask():
    mask = os.umask(0)  # the only portable way to read it
    os.umask(mask)
    return mask


def _temporary(path, folder):
    """(fd, name) of the file a save writes before renaming it over ``path``: the one named
    ``.<name>.tmp`` beside it, locked (a write killed half way leaves that one file, which
    the next save of ``path`` truncates and renames away), or, while another process holds
    that one, a unique ``.<name>.<random>.tmp`` (removed on any error but a kill)."""
    named = os.path.join(folder, "." + os.path.basename(path) + ".tmp")
    if fcntl is not None:
        fd = os.open(named, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the process ends
            os.ftruncate(fd, 0)
            return fd, named
        except OSError:
            os.close(fd)
    return tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")


def _write_atomic(path, arrays):
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = _temporary(path, folder)
    except OSError as exc:  # name the user's path, not the temporary file's
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}", path) from None
    try:
        # mkstemp creates 0600; a model file follows the umask like any other output
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb", closefd=False) as f:  # fd (and its lock) kept to the rename
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    try:  # make the rename itself durable (POSIX; not possible on every platform)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_archive(path):
    """Every array of the archive, read eagerly (so corruption surfaces here)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:1] == b"\x80":  # pickle protocol 2+ opcode
        raise ModelFileError(f"{path}: refusing to load pickled data (a fastnn model file holds "
                             "only numeric arrays)")
    if magic.startswith(b"\x93NUMPY"):
        raise ModelFileError(f"{path}: not a fastnn model file (a single .npy array)")
    if not magic.startswith(b"PK"):
        raise ModelFileError(f"{path}: not a fastnn model file (not an .npz archive)")
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                _check_member(path, zf, info)
            bad = zf.testzip()
        if bad is not None:
            raise ModelFileError(f"{path}: corrupted (checksum mismatch in {bad!r})")
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ModelFileError:
        raise
    except MemoryError:
        raise ModelFileError(f"{path}: corrupted (an entry needs more memory than exists)") from None
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ModelFileError(f"{path}: refusing to load pickled data (a fastnn model file "
                                 "holds only numeric arrays)") from None
        raise ModelFileError(f"{path}: corrupted ({exc})") from None
    # zipfile's NotImplementedError: entry features it does not support (patched data, strong encryption)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, NotImplementedError) as exc:
        raise ModelFileError(f"{path}: truncated or corrupted ({type(exc).__name__}: {exc})") from None


def _check_member(path, zf, info):
    """Refuse an entry before reading it: encrypted or compressed (fastnn writes neither),
    not an .npy array, object dtype (pickle), or a header declaring more data than the entry
    holds (which would make NumPy allocate it: absurd dimensions never allocate here)."""
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{path}: not a fastnn model file (encrypted entry {info.filename!r})")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(f"{path}: not a fastnn model file (compressed entry {info.filename!r})")
    if not info.filename.endswith(".npy"):
        raise ModelFileError(f"{path}: not a fastnn model file (entry {info.filename!r})")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ModelFileError(f"{path}: entry {info.filename!r} has .npy version {version}")
    if dtype.hasobject:
        raise ModelFileError(f"{path}: refusing to load pickled data (a fastnn model file holds "
                             "only numeric arrays)")
    if int(np.prod(shape, dtype=object)) * dtype.itemsize > info.file_size:
        raise ModelFileError(f"{path}: corrupted (entry {info.filename!r} declares shape {shape} "
                             f"but holds {info.file_size} bytes)")


def _read_header(path, arrays):
    raw = arrays.get(HEADER_KEY)
    if raw is None:
        raise ModelFileError(f"{path}: not a fastnn model file (no {HEADER_KEY} entry)")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{path}: malformed header (dtype {raw.dtype}, shape {raw.shape})")
    try:
        header = _json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: malformed header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: not a fastnn model file (format "
                             f"{header.get('format') if isinstance(header, dict) else None!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: malformed header (format_version {version!r})")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {version} is newer than this fastnn "
                             f"({__version__}) can read (up to {FORMAT_VERSION}); upgrade fastnn")
    return header


def load(path):
    """Read a model file written by ``save``.

    Returns
    -------
    Model
        Named tuple: ``net`` (a rebuilt ``Sequential`` in eval mode), ``optimizer_state``,
        ``schedule_state``, ``preprocessing`` (flat dicts or None), ``metadata`` (dict),
        ``optimizer_config``, ``schedule_config`` (``{"class", "config"}`` or None),
        ``format_version``, ``fastnn_version``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError (a ValueError)
        The file is truncated, corrupted, not a fastnn model, pickle-bearing, or of a newer
        format version; the message names the file.
    """
    path = os.fspath(path)
    arrays = _read_archive(path)
    header = _read_header(path, arrays)
    sections = {name: {} for name in SECTIONS}
    for key, value in arrays.items():
        if key == HEADER_KEY:
            continue
        section, _, name = key.partition("/")
        if section not in sections or not name:
            raise ModelFileError(f"{path}: unexpected entry {key!r}")
        sections[section][name] = value
    try:
        net = Sequential.from_config(header["config"])
        net.load_state_dict(sections["net"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot rebuild the network ({type(exc).__name__}: {exc})") from None
    net.eval()
    states = {}
    for section in ("optimizer", "schedule", "preprocessing"):
        info = header.get(section)
        if info is None:
            if sections[section]:
                raise ModelFileError(f"{path}: {section} arrays without a {section} header")
            states[section] = None
            continue
        if not isinstance(info, dict) or not isinstance(info.get("scalars", {}), dict):
            raise ModelFileError(f"{path}: malformed {section} header")
        states[section] = {**info.get("scalars", {}), **sections[section]}
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: malformed metadata")

    def config(section):
        info = header.get(section)
        return None if info is None or "class" not in info else {"class": info["class"],
                                                                  "config": info.get("config", {})}

    return Model(net=net, optimizer_state=states["optimizer"], schedule_state=states["schedule"],
                 preprocessing=states["preprocessing"], metadata=metadata,
                 optimizer_config=config("optimizer"), schedule_config=config("schedule"),
                 format_version=header["format_version"],
                 fastnn_version=header.get("fastnn_version"))


def restore(model):
    """Rebuild the optimizer and schedule saved in a model file, for ``model.net``.

    ``model`` is what ``fastnn.io.load`` returns. Returns ``(optimizer, schedule)`` (None
    for what the file does not hold), their state loaded, ready to continue with
    ``fit(model.net, ..., optimizer=optimizer, schedule=schedule, initial_epoch=...)``.
    """
    optimizer = schedule = None
    if model.optimizer_state is not None:
        if model.optimizer_config is None:
            raise ValueError("the model file has optimizer state but no optimizer description")
        name = model.optimizer_state.get("name")
        optimizer = optimizers.get(str(name), model.net.parameters(),
                                   **model.optimizer_config["config"])
        optimizer.load_state_dict(model.optimizer_state)
    if model.schedule_state is not None:
        if optimizer is None or model.schedule_config is None:
            raise ValueError("the model file has schedule state but no optimizer or schedule description")
        schedule = schedules.get(str(model.schedule_state.get("name")), optimizer,
                                 **model.schedule_config["config"])
        schedule.load_state_dict(model.schedule_state)
    return optimizer, schedule
