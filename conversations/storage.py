"""Where uploaded and downloaded files are kept: the file system, leaving nothing half-written behind."""

import logging
import os

from django.core.files.storage import FileSystemStorage

logger = logging.getLogger(__name__)


class SafeFileSystemStorage(FileSystemStorage):
    """Django's file-system storage, but a write that fails part-way (a full disk, an I/O error) removes
    what it had written before the error goes up: a failed upload leaves no partial file."""

    def _save(self, name, content):
        try:
            return super()._save(name, content)
        except FileExistsError:
            raise  # another writer's file: not ours to remove (Django picks another name)
        except OSError:
            path = self.path(name)
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError:
                logger.exception("storage: could not remove the partial file %s", path)
            raise
