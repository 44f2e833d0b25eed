"""Adding to a catalog: files (copied into managed storage or registered in place),
bytes, external URIs and prepared records."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from arcodex.catalog._duplicates import Addition, refuse_duplicates
from arcodex.catalog._events import current_user
from arcodex.catalog._journal import UnitOfWork
from arcodex.catalog._metadata import merge, metadata_of, pydantic_message
from arcodex.catalog._schemas import Policy
from arcodex.catalog._writing import CatalogWriter, refusals_logged
from arcodex.errors import ArcodexError, NotFoundError, StorageError, ValidationError
from arcodex.extract import Extracted, extract_file
from arcodex.model import Artifact, ExternalUri, FsspecUrl, LocalPath, Record, check_metadata
from arcodex.storage import FsspecStore, LocalStore, hash_file, render_path

__all__ = ["Adding"]


class Adding(CatalogWriter):
    """The part of a catalog that adds records."""

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> Record:
        """Add one file: copied into managed storage, or registered where it is (``in_place``).

        A file the catalog holds already (same content, or the same path in place) is
        refused with the record's id unless ``allow_duplicate``.
        """
        return self.add_files(
            [path],
            kind=kind,
            metadata=metadata,
            tags=tags,
            title=title,
            description=description,
            record_ids=[record_id] if record_id else None,
            in_place=in_place,
            extract=extract,
            profile=profile,
            schema=schema,
            schema_policy=schema_policy,
            require_metadata=require_metadata,
            allow_duplicate=allow_duplicate,
            user=user,
        )[0]

    @refusals_logged("add")
    def add_files(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        kind: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_ids: Sequence[str] | None = None,
        in_place: bool = False,
        extract: bool = True,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        require_metadata: bool = False,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> list[Record]:
        """Add files as one operation: every file is checked and read before anything is
        written, and either all records are added or none.

        A file the catalog holds already (same sha256, or the same path registered in
        place), or given twice, is refused (:class:`ConflictError` naming the records;
        nothing is added) unless ``allow_duplicate``.
        """
        user = user or current_user()
        files = [Path(p).expanduser() for p in paths]
        if record_ids is not None and len(record_ids) != len(files):
            raise ValidationError(
                f"{len(record_ids)} ids given for {len(files)} files; give one id per file"
            )
        for file in files:
            check_readable(file, in_place=in_place)
        tags = list(tags)
        user_meta = metadata_of(metadata)
        drafts: list[tuple[Path, Record, Extracted]] = []
        for i, file in enumerate(files):
            before = self._hook("before_metadata_extract", path=file).metadata
            found = extract_file(file, require=require_metadata) if extract else bare(file)
            for problem in found.errors:
                with suppress(ArcodexError):
                    self.events.emit(
                        "extract.failed",
                        f"metadata of {file} only partly read: {problem}",
                        level="warning",
                        user=user,
                        path=str(file),
                    )
            found.metadata = merge(merge(before, found.metadata), self._hook(
                "after_metadata_extract", path=file, metadata=found.metadata
            ).metadata)  # fmt: skip
            rec_kwargs: dict[str, Any] = {}
            if record_ids is not None:
                rec_kwargs["id"] = record_ids[i]
            merged = merge(found.metadata, user_meta)
            merged = merge(
                merged, self._hook("before_record_validate", path=file, metadata=merged).metadata
            )
            try:
                record = Record(
                    kind=kind or found.kind or "document",
                    title=title or found.metadata.get("title") or file.name,
                    description=description,
                    metadata=merged,
                    tags=tags,
                    created_by=user,
                    updated_by=user,
                    **rec_kwargs,
                )
            except ValueError as exc:
                raise ValidationError(f"cannot add {file}: {pydantic_message(exc)}") from None
            record = self._with_schema(record, schema, schema_policy, user)
            self._hook("after_record_validate", record=record, path=file)
            drafts.append((file, record, found))
        records: list[Record] = []
        with self.unit_of_work(
            "add",
            user=user,
            inputs=[str(f.resolve()) for f in files],
            parameters={"in_place": in_place, "extract": extract, "profile": profile, "kind": kind},
        ) as uow:
            uow.transition("planned", records=[r.id for _, r, _ in drafts], profile=profile)
            uow.transition("artifact_write_started")
            for file, record, found in drafts:
                locator: LocalPath | FsspecUrl
                if in_place:
                    size, sha = dir_size(file) if file.is_dir() else file_hash(file)
                    locator = LocalPath(path=str(file.resolve()))
                    managed = False
                else:
                    store, template = self._store(profile)
                    self._hook("before_path_plan", uow=uow, record=record, path=file)
                    key = render_path(
                        template,
                        {
                            "id": record.id,
                            "kind": record.kind,
                            "ext": "".join(file.suffixes[-1:]),
                            "name": file.name,
                            "stem": file.stem,
                            "metadata": record.metadata,
                        },
                    )
                    self._hook("after_path_plan", uow=uow, record=record, path=file, key=key)
                    self._hook("before_artifact_write", uow=uow, record=record, path=file, key=key)
                    key, size, sha = store.write_file(file, key)
                    undo_write(uow, store, key, profile or self.config.default_profile)
                    self._hook("after_artifact_write", uow=uow, record=record, path=file, key=key)
                    locator = store.locator(key)
                    managed = True
                artifact = Artifact(
                    role="primary",
                    locator=locator,
                    media_type=found.media_type,
                    format=found.format,
                    size_bytes=size,
                    hashes={"sha256": sha} if sha else {},
                    managed=managed,
                    metadata={
                        "source_path": str(file.resolve()),
                        "extractors": found.extractors,
                        **({"extract_errors": found.errors} if found.errors else {}),
                    },
                )
                records.append(record.model_copy(update={"artifacts": [artifact]}))
            if not allow_duplicate:
                # After the copy, which hashes the file: one read of it. A refusal rolls back.
                refuse_duplicates(
                    self.backend,
                    [
                        _addition(self.root, f, r)
                        for (f, _, _), r in zip(drafts, records, strict=True)
                    ],
                )
            uow.transition("artifact_write_succeeded")
            self._write_records(uow, records)
        return records

    @refusals_logged("add")
    def add_bytes(
        self,
        data: bytes,
        *,
        name: str,
        kind: str = "document",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        media_type: str | None = None,
        profile: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        user: str | None = None,
    ) -> Record:
        """Store ``data`` as a managed file called ``name`` and add a record for it."""
        user = user or current_user()
        if not name or "/" in name or name in (".", ".."):
            raise ValidationError(f"bad name {name!r}: give a file name like notes.txt")
        found = Extracted()
        from arcodex.extract import FileExtractor

        FileExtractor().extract(Path(name), found)
        try:
            record = Record(
                kind=kind,
                title=title or name,
                description=description,
                metadata=merge(found.metadata, metadata_of(metadata)),
                tags=list(tags),
                created_by=user,
                updated_by=user,
                **({"id": record_id} if record_id else {}),
            )
        except ValueError as exc:
            raise ValidationError(f"cannot add {name}: {pydantic_message(exc)}") from None
        record = self._with_schema(record, schema, schema_policy, user)
        self._hook("after_record_validate", record=record)
        store, template = self._store(profile)
        self._hook("before_path_plan", record=record)
        key = render_path(
            template,
            {
                "id": record.id,
                "kind": record.kind,
                "ext": "".join(Path(name).suffixes[-1:]),
                "name": name,
                "stem": Path(name).stem,
                "metadata": record.metadata,
            },
        )
        with self.unit_of_work(
            "add", user=user, inputs=[f"bytes:{name}"], parameters={"profile": profile}
        ) as uow:
            uow.transition("planned", records=[record.id], profile=profile)
            self._hook("after_path_plan", uow=uow, record=record, key=key)
            uow.transition("artifact_write_started")
            self._hook("before_artifact_write", uow=uow, record=record, key=key)
            key, size, sha = store.write_bytes(data, key)
            undo_write(uow, store, key, profile or self.config.default_profile)
            self._hook("after_artifact_write", uow=uow, record=record, key=key)
            artifact = Artifact(
                locator=store.locator(key),
                media_type=media_type or found.media_type,
                format=found.format,
                size_bytes=size,
                hashes={"sha256": sha},
                managed=True,
            )
            record = record.model_copy(update={"artifacts": [artifact]})
            uow.transition("artifact_write_succeeded")
            self._write_records(uow, [record])
        return record

    def add_external(
        self,
        uri: str,
        *,
        kind: str = "external",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_id: str | None = None,
        media_type: str | None = None,
        format: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> Record:
        """Register a URI arcodex does not manage; nothing is downloaded. A URI a record
        holds already is refused unless ``allow_duplicate``."""
        return self.add_externals(
            [uri],
            kind=kind,
            metadata=metadata,
            tags=tags,
            title=title,
            description=description,
            record_ids=[record_id] if record_id else None,
            media_type=media_type,
            format=format,
            schema=schema,
            schema_policy=schema_policy,
            allow_duplicate=allow_duplicate,
            user=user,
        )[0]

    @refusals_logged("add")
    def add_externals(
        self,
        uris: Sequence[str],
        *,
        kind: str = "external",
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        title: str | None = None,
        description: str | None = None,
        record_ids: Sequence[str] | None = None,
        media_type: str | None = None,
        format: str | None = None,
        schema: str | None = None,
        schema_policy: Policy | None = None,
        allow_duplicate: bool = False,
        user: str | None = None,
    ) -> list[Record]:
        """Register URIs as one operation: all are added, or none (nothing is downloaded).
        A URI a record holds already, or given twice, is refused unless ``allow_duplicate``."""
        user = user or current_user()
        if record_ids is not None and len(record_ids) != len(uris):
            raise ValidationError(
                f"{len(record_ids)} ids given for {len(uris)} URIs; give one id per URI"
            )
        tags = list(tags)
        meta = metadata_of(metadata)
        records = []
        for i, uri in enumerate(uris):
            check_uri(uri)
            try:
                records.append(
                    Record(
                        kind=kind,
                        title=title or uri,
                        description=description,
                        metadata=meta,
                        tags=tags,
                        created_by=user,
                        updated_by=user,
                        artifacts=[
                            Artifact(
                                locator=ExternalUri(uri=uri),
                                media_type=media_type,
                                format=format,
                                status="external",
                            )
                        ],
                        **({"id": record_ids[i]} if record_ids is not None else {}),
                    )
                )
            except ValueError as exc:
                raise ValidationError(f"cannot add {uri}: {pydantic_message(exc)}") from None
        records = [self._with_schema(r, schema, schema_policy, user) for r in records]
        for record in records:
            self._hook("after_record_validate", record=record)
        if not allow_duplicate:
            refuse_duplicates(self.backend, [Addition(u, locations=(u,)) for u in uris])
        with self.unit_of_work("add", user=user, inputs=list(uris)) as uow:
            uow.transition("planned", records=[r.id for r in records])
            self._write_records(uow, records)
        return records

    @staticmethod
    def extract(path: str | os.PathLike[str], *, require_metadata: bool = False) -> dict[str, Any]:
        """What ``add`` would read from a file or store, without a catalog or any write."""
        target = Path(path).expanduser()
        if not target.exists():
            raise NotFoundError(f"{target} does not exist; check the path")
        found = extract_file(target, require=require_metadata)
        return {
            "path": str(target.resolve()),
            "kind": found.kind,
            "format": found.format,
            "media_type": found.media_type,
            "extractors": found.extractors,
            "errors": found.errors,
            "metadata": check_metadata(found.metadata),
        }


def _addition(root: Path, file: Path, record: Record) -> Addition:
    """What the duplicate check knows of an added file: its content, and its path when it
    stays where it is (a managed copy's own path is arcodex's, not the user's); a path in
    the catalog is also known relative to its root, as arcodex records its own products."""
    artifact = record.artifacts[0]
    places: tuple[str, ...] = ()
    if not artifact.managed and isinstance(artifact.locator, LocalPath):
        path = Path(artifact.locator.path)
        inside = path.is_relative_to(root.resolve())
        places = (str(path), str(path.relative_to(root.resolve()))) if inside else (str(path),)
    return Addition(str(file), sha256=artifact.hashes.get("sha256"), locations=places)


def check_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in uri):
        raise ValidationError(
            f"{uri!r} is not a URI; give one like https://host/path or doi:10.1000/x"
        )
    if parts.password:
        raise ValidationError(
            "the URI carries a password; put credentials in a storage profile, not the URI"
        )


def check_readable(path: Path, *, in_place: bool = False) -> None:
    if not path.exists():
        raise NotFoundError(f"{path} does not exist; check the path")
    if path.is_dir():
        if in_place:
            return
        raise ValidationError(
            f"{path} is a directory; add the files in it (e.g. {path}/*.nc), or register "
            "the whole directory (a Zarr store, say) where it is with --in-place"
        )
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise StorageError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from exc


def dir_size(path: Path) -> tuple[int, str]:
    """Total size of a directory tree; directories carry no single hash."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()), ""


def file_hash(path: Path) -> tuple[int, str]:
    try:
        return hash_file(path)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def bare(path: Path) -> Extracted:
    from arcodex.extract import FileExtractor

    found = Extracted()
    FileExtractor().extract(path, found)
    return found


def undo_write(uow: UnitOfWork, store: LocalStore | FsspecStore, key: str, profile: str) -> None:
    """Journal an object this unit created and register its removal."""
    uow.on_rollback(f"delete {key} from profile {profile}", lambda: store.delete(key), key=key)
    uow.transition("artifact_written", profile=profile, key=key)
