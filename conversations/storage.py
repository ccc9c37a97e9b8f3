"""Where uploaded and downloaded files are kept: the file system, leaving nothing half-written behind."""

import logging
import os
import uuid

from django.core.files.storage import FileSystemStorage
from django.db import transaction

logger = logging.getLogger(__name__)


def delete_on_commit(files) -> None:
    """Delete these attachments' stored files once the transaction that removes their rows commits (no
    cascade removes a file); a file that cannot be deleted is logged, for an operator to remove."""
    names = [(f.file.storage, f.file.name) for f in files if f.file]

    def delete() -> None:
        for storage, name in names:
            try:
                storage.delete(name)
            except OSError:
                logger.exception("storage: could not delete %s; delete it by hand", name)

    if names:
        transaction.on_commit(delete)


class SafeFileSystemStorage(FileSystemStorage):
    """Django's file-system storage, writing each file under a name of its own first and moving it into
    place only once whole: a write that fails part-way (a full disk, an I/O error) removes its own partial
    file and nobody else's, and no reader ever sees half a file."""

    def _save(self, name, content):
        directory, base = os.path.split(name)
        partial = os.path.join(directory, f".partial-{uuid.uuid4().hex}-{base}")
        try:
            partial = super()._save(partial, content)
        except OSError:
            try:
                os.remove(self.path(partial))
            except FileNotFoundError:
                pass
            raise
        while True:
            final = self.get_available_name(name)
            try:
                os.link(self.path(partial), self.path(final))  # fails, rather than overwrites, if taken
            except FileExistsError:
                continue  # taken meanwhile by another writer: choose again
            break
        os.remove(self.path(partial))
        return final.replace("\\", "/")
