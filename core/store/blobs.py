"""Byte blobs by key, in a local folder or an S3 bucket, with one small synchronous interface.

Keys are "/"-separated relative paths ("SPY/5min/latest.json"). Every `put` is atomic for a
reader (local: temp file + fsync + os.replace; S3: put_object replaces an object atomically), so a
reader sees the old bytes or the new ones, never a mix. Callers in async code wrap the calls in
`asyncio.to_thread`. Every failure is a `StoreError` with a short message that names the bucket or
folder but never a credential.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit


class StoreError(Exception):
    """The store could not be read or written. The message is one short line, safe to show."""


class BlobNotFound(StoreError):
    """No blob under that key."""


class BucketNotFound(StoreError):
    """The S3 bucket does not exist."""


class StoreAccessDenied(StoreError):
    """Credentials are missing or not allowed to do this."""


class StoreUnreachable(StoreError):
    """The storage endpoint did not answer."""


@dataclass(frozen=True)
class BlobMeta:
    key: str
    size: int
    etag: str  # changes whenever the bytes may have changed; compare, never parse


@runtime_checkable
class BlobStore(Protocol):
    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes) -> None: ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix` (a plain string prefix, as in S3), sorted."""
        ...

    def list_meta(self, prefix: str = "") -> list[BlobMeta]:
        """Like `list`, with each blob's size and etag (one listing call, no downloads)."""
        ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root or collide with temp files."""
    if not isinstance(key, str) or not key or len(key) > 900:
        raise StoreError(f"invalid store key {key!r}")
    for seg in key.split("/"):
        if not _SEGMENT_RE.match(seg) or ".." in seg:
            raise StoreError(f"invalid store key {key!r}")
    return key


class LocalBlobStore:
    """Blobs as files under `root`; temp files are hidden (leading dot) and never listed."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(f"{key} not found in {self.root}") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} in {self.root}: {exc.strerror or exc}") from None

    def put(self, key: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(f"data for {key} must be bytes")
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self._fsync_dir(path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {key} in {self.root}: {exc.strerror or exc}") from None

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        # Makes the rename itself durable; not every platform lets a directory be opened.
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _walk(self, prefix: str) -> list[tuple[str, os.stat_result]]:
        # Start from the deepest folder the prefix names, so listing one version stays cheap.
        base_parts = [p for p in prefix.split("/")[:-1] if p]
        base = self.root.joinpath(*base_parts)
        out: list[tuple[str, os.stat_result]] = []
        if not base.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    try:
                        out.append((key, os.stat(os.path.join(dirpath, name))))
                    except FileNotFoundError:
                        continue  # deleted while listing
        out.sort(key=lambda item: item[0])
        return out

    def list(self, prefix: str = "") -> list[str]:
        try:
            return [key for key, _ in self._walk(prefix)]
        except OSError as exc:
            raise StoreError(f"cannot list {self.root}: {exc.strerror or exc}") from None

    def list_meta(self, prefix: str = "") -> list[BlobMeta]:
        try:
            return [BlobMeta(key, st.st_size, f"{st.st_size}-{st.st_mtime_ns}-{st.st_ino}")
                    for key, st in self._walk(prefix)]
        except OSError as exc:
            raise StoreError(f"cannot list {self.root}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete {key} in {self.root}: {exc.strerror or exc}") from None
        # Drop folders left empty (a pruned version) but never the root itself.
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def _safe_endpoint(endpoint_url: str | None) -> str:
    """The endpoint as host[:port] only, so a URL with embedded user:password never leaks."""
    if not endpoint_url:
        return "the S3 endpoint"
    parts = urlsplit(endpoint_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "the S3 endpoint"


class S3BlobStore:
    """Blobs as objects under `s3://bucket/prefix`; boto3 finds credentials its usual way."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 client: Any | None = None):
        if not re.match(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", bucket or ""):
            raise StoreError(f"invalid S3 bucket name {bucket!r}")
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self._client = client if client is not None else self._make_client(endpoint_url)

    def __repr__(self) -> str:
        return f"S3BlobStore('s3://{self.bucket}/{self.prefix}')"

    @staticmethod
    def _make_client(endpoint_url: str | None) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session()
        config = Config(
            connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"},
        )
        return session.client(
            "s3", region_name=session.region_name or "us-east-1", endpoint_url=endpoint_url, config=config,
        )

    def _translate(self, exc: Exception, op: str, key: str | None = None) -> StoreError:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )
        from botocore.exceptions import ConnectTimeoutError as BotoConnectTimeout

        where = f"S3 bucket '{self.bucket}'"
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return BucketNotFound(f"{where} does not exist")
            if code in ("NoSuchKey", "404", "NotFound"):
                return BlobNotFound(f"{key} not found in {where}")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                        "ExpiredToken", "InvalidToken", "AllAccessDisabled") or status == 403:
                return StoreAccessDenied(f"access denied to {where} ({code or status}): check AWS credentials")
            return StoreError(f"S3 {op} failed on {where}: {code or status}")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StoreAccessDenied(f"no usable AWS credentials for {where}")
        if isinstance(exc, EndpointConnectionError | BotoConnectTimeout | ConnectionClosedError
                      | ReadTimeoutError):
            return StoreUnreachable(f"{_safe_endpoint(self.endpoint_url)} unreachable for {where}")
        return StoreError(f"S3 {op} failed on {where}: {type(exc).__name__}")

    def _call(self, op: str, key: str | None, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, op)(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, op, key) from None

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError

        resp = self._call("get_object", key, Key=self.prefix + check_key(key))
        try:
            return resp["Body"].read()
        except BotoCoreError as exc:
            raise self._translate(exc, "get_object", key) from None

    def put(self, key: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(f"data for {key} must be bytes")
        self._call("put_object", key, Key=self.prefix + check_key(key), Body=bytes(data))

    def _objects(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": self.prefix + prefix}
            if token:
                kwargs["ContinuationToken"] = token
            resp = self._call("list_objects_v2", None, **kwargs)
            out.extend(resp.get("Contents", []))
            if not resp.get("IsTruncated"):
                break
            token = resp.get("NextContinuationToken")
        n = len(self.prefix)
        for obj in out:
            obj["Key"] = obj["Key"][n:]
        out.sort(key=lambda obj: obj["Key"])
        return out

    def list(self, prefix: str = "") -> list[str]:
        return [obj["Key"] for obj in self._objects(prefix)]

    def list_meta(self, prefix: str = "") -> list[BlobMeta]:
        return [BlobMeta(obj["Key"], int(obj.get("Size", 0)), str(obj.get("ETag", "")).strip('"'))
                for obj in self._objects(prefix)]

    def delete(self, key: str) -> None:
        self._call("delete_object", key, Key=self.prefix + check_key(key))

    def exists(self, key: str) -> bool:
        # A listing rather than head_object: a missing bucket must raise, not read as "no such key".
        full = self.prefix + check_key(key)
        resp = self._call("list_objects_v2", key, Prefix=full, MaxKeys=1)
        return any(obj["Key"] == full for obj in resp.get("Contents", []))


def open_blob_store(url: str, endpoint_url: str | None = None) -> BlobStore:
    """"s3://bucket/prefix" opens S3 (endpoint_url for MinIO/moto etc.); anything else is a folder."""
    url = (url or "").strip()
    if not url:
        raise StoreError("model store location is empty: set MODEL_STORE to a folder or s3://bucket/prefix")
    if url.startswith("s3://"):
        rest = url[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        return S3BlobStore(bucket, prefix, endpoint_url=endpoint_url)
    return LocalBlobStore(Path(url).expanduser())
