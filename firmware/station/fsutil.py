# Small file helpers shared by the config, state and queue code.
import os


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def makedirs(path):
    part = ""
    for name in path.split("/"):
        if not name:
            part = "/" if not part else part
            continue
        part = name if not part else (part.rstrip("/") + "/" + name)
        if not exists(part):
            os.mkdir(part)


def read_bytes(path):
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write_atomic(path, data):
    """Replace a file so that a power cut leaves either the old or the new content.

    On littlefs (the ESP32 default) rename is atomic and replaces the target. FAT refuses to
    rename onto an existing file, so there we remove it first: not atomic, hence littlefs.
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
