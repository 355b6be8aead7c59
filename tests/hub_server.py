"""A local server that speaks the Hugging Face Hub's HTTP API, for tests (stdlib only, 127.0.0.1, random port).

``huggingface_hub``, ``transformers`` and ``datasets`` talk to it as they would to huggingface.co: listing and
model info (with ``expand``), file downloads (``HEAD``/``GET`` ``resolve`` with ``Range``), repository trees,
dataset repos (``datasets.load_dataset(repo_id)``), Spaces (files only: nothing runs), and writes: ``create_repo``,
commits and pull requests (``create_commit``, ``metadata_update(..., create_pr=True)``, ``push_to_hub`` of models
and datasets, binary files through the git-LFS batch API). It is real HTTP (``http.server.ThreadingHTTPServer``),
not a mock: the libraries run their own request, retry and caching code against it.

Pointing the libraries at it
----------------------------
``huggingface_hub`` reads ``HF_ENDPOINT`` once, when ``huggingface_hub.constants`` is imported, and derives more
constants from it there (``HUGGINGFACE_CO_URL_TEMPLATE``, the trusted ``HF_URL_HOSTS``); ``RepoCard.validate``
reads ``constants.ENDPOINT`` directly, and ``datasets.config`` copies the variable into ``HF_ENDPOINT`` and
``HUB_DATASETS_URL`` at its own import. Patching one constant after import therefore misses the others. So
``tests/conftest.py`` starts one server per test session *before* any test module is imported and sets
``HF_ENDPOINT`` (and a throw-away ``HF_HOME``) in ``os.environ``: every library imported later, in this process or
in a subprocess that inherits the environment, talks to the server. Tests take the ``hub_server`` fixture, which
hands them this server emptied of the previous test's repos, requests, faults and commits.

What tests can do
-----------------
- ``add_model(repo_id, folder, gated=..., private=..., license=..., tags=..., pipeline_tag=..., downloads=...,
  likes=..., auto_map=..., files=...)`` and ``add_dataset(repo_id, files, folder=...)``: a repo made of local
  files (adding to an existing repo commits on ``main``; earlier shas stay). Writes through the libraries work too.
- ``requests`` / ``requests_to(path)``: what the server received (method, path, decoded query, whether an
  ``Authorization`` header came; the token itself is never recorded).
- ``fail(path, status=500, times=N)`` and ``delay(path, seconds, times=N)``: faults for the next N matching
  requests.
- ``commits`` / ``pull_requests``: commits received, their NDJSON operations decoded; a commit is applied, so a
  PR's files can be downloaded at ``refs/pr/N`` (and read directly with ``file(repo_id, path, revision=...)``).
- ``page_size``: listings answer in pages of this size with a ``Link: <...>; rel="next"`` header.

Downloads land in the session's throw-away ``HF_HOME``; pass ``cache_dir=hf_cache`` (a fixture: an empty cache per
test) where a test must not see files that an earlier test downloaded.

Example::

    def test_something(hub_server, hf_cache, tmp_path):
        folder = _tiny_models.bert(tmp_path / "bert")
        sha = hub_server.add_model("org/bert", folder, tags=["demo"], license="mit", downloads=10)
        model = AutoModel.from_pretrained("org/bert", revision=sha, cache_dir=hf_cache)
        assert hub_server.requests_to("/org/bert/resolve/", method="GET")

Deliberate simplifications: uploads use git-LFS "basic" transfers, never Xet (conftest sets
``HF_HUB_DISABLE_XET=1``); search and filters follow the Hub's semantics only as far as the tests need
(``filter`` values are ANDed over tags, ``pipeline_tag``, ``author``, ``search`` as a substring, ``sort``
descending); a token is any string, and ``create_repo`` grants its token access to the new repo.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

# Files the Hub stores with git LFS: their ETag and tree "lfs.oid" are the sha256 of the content.
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".parquet", ".arrow")
_SORT_KEYS = {"downloads", "likes", "trendingScore", "createdAt", "lastModified"}


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the server received. ``query`` maps each parameter to all its values, in order."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorized: bool
    status: int


@dataclasses.dataclass(frozen=True)
class Operation:
    """One decoded line of a commit's NDJSON body: ``kind`` is ``file``, ``deletedFile``, ``deletedFolder``..."""

    kind: str
    path: str
    content: bytes | None = None


@dataclasses.dataclass(frozen=True)
class Commit:
    """A commit the server received and applied. ``pr_num`` is set when it opened a pull request."""

    repo_id: str
    repo_type: str
    revision: str
    oid: str
    summary: str
    description: str
    operations: tuple[Operation, ...]
    pr_num: int | None


@dataclasses.dataclass
class _Fault:
    pattern: re.Pattern
    method: str | None
    times: int
    status: int | None = None
    seconds: float = 0.0


@dataclasses.dataclass
class _Repo:
    repo_type: str  # "model" or "dataset"
    repo_id: str
    snapshots: dict[str, dict[str, bytes]]  # commit sha -> {path: content}
    refs: dict[str, str]  # "main", "refs/pr/1", ... -> commit sha
    private: bool
    gated: bool | str
    tokens: frozenset[str]  # tokens with access (private: read; gated: granted)
    meta: dict  # downloads, likes, dates, license, tags, pipeline_tag, library_name, auto_map

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        matches = [sha for sha in self.snapshots if sha.startswith(revision)] if len(revision) >= 7 else []
        return matches[0] if len(matches) == 1 else None


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _etag(path: str, content: bytes) -> str:
    return hashlib.sha256(content).hexdigest() if path.endswith(_LFS_SUFFIXES) else _git_blob_sha(content)


def _commit_sha(files: Mapping[str, bytes], parent: str | None, message: str) -> str:
    digest = hashlib.sha1((parent or "").encode() + message.encode())
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()


def _safetensors_parameters(content: bytes) -> dict[str, int]:
    """Parameter count per dtype from a safetensors header (8-byte little-endian length, then JSON)."""
    (length,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8 : 8 + length])
    counts: dict[str, int] = {}
    for name, tensor in header.items():
        if name != "__metadata__":
            n = 1
            for dim in tensor["shape"]:
                n *= dim
            counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + n
    return counts


def _read_files(folder: str | Path | None, files: Mapping[str, bytes | str | Path] | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder")
        for path in sorted(root.rglob("*")):
            if path.is_file() and ".cache" not in path.relative_to(root).parts:
                out[path.relative_to(root).as_posix()] = path.read_bytes()
    for name, value in (files or {}).items():
        out[name] = Path(value).read_bytes() if isinstance(value, Path) else (
            value.encode() if isinstance(value, str) else bytes(value))
    return out


class HubServer:
    """An in-memory Hub on ``http://127.0.0.1:<port>``; thread-safe. Start with ``start()``, stop with ``stop()``."""

    def __init__(self, *, page_size: int = 1000) -> None:
        self.page_size = page_size
        self._lock = threading.Lock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._commits: list[Commit] = []
        self._lfs: dict[str, bytes] = {}  # sha256 -> content uploaded through the LFS batch API
        self._clock = 0
        self._generation = 0  # bumped by reset(): a request still in flight from an earlier test is not logged
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> HubServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started: call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def reset(self) -> None:
        """Forget every repo, request, fault and commit (the fixture calls this between tests)."""
        with self._lock:
            self._repos.clear()
            self._requests.clear()
            self._faults.clear()
            self._commits.clear()
            self._lfs.clear()
            self._generation += 1
            self.page_size = 1000

    # -- repos -----------------------------------------------------------------------------------------------------
    def add_model(
        self,
        repo_id: str,
        folder: str | Path | None = None,
        *,
        files: Mapping[str, bytes | str | Path] | None = None,
        gated: bool | str = False,
        private: bool = False,
        tokens: Iterable[str] = (),
        license: str | None = None,
        tags: Iterable[str] = (),
        pipeline_tag: str | None = None,
        library_name: str | None = "transformers",
        downloads: int = 0,
        likes: int = 0,
        trending_score: int = 0,
        created_at: str | None = None,
        last_modified: str | None = None,
        auto_map: Mapping[str, str] | None = None,
    ) -> str:
        """Serve the files of ``folder`` (plus ``files``: path in repo -> bytes, text or a local path) as a model.

        ``gated`` (True = "auto", or "manual") and ``private`` repos accept only the ``tokens`` given here.
        ``auto_map`` is written into ``config.json`` (a checkpoint that needs remote code). ``created_at`` and
        ``last_modified`` are ISO dates; by default repos added later are newer. Adding to an existing repo makes a
        new commit on ``main`` (earlier shas stay downloadable) and replaces its settings. Returns the new sha.
        """
        content = _read_files(folder, files)
        if auto_map is not None:
            config = json.loads(content.get("config.json", b"{}"))
            config["auto_map"] = dict(auto_map)
            content["config.json"] = json.dumps(config, indent=2).encode()
        meta = dict(
            license=license, tags=list(tags), pipeline_tag=pipeline_tag, library_name=library_name,
            downloads=downloads, likes=likes, trendingScore=trending_score,
            createdAt=created_at, lastModified=last_modified,
        )
        return self._add("model", repo_id, content, private=private, gated=gated, tokens=tokens, meta=meta)

    def add_dataset(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str | Path] | None = None,
        *,
        folder: str | Path | None = None,
        private: bool = False,
        gated: bool | str = False,
        tokens: Iterable[str] = (),
        tags: Iterable[str] = (),
    ) -> str:
        """Serve the files of ``folder`` plus ``files`` (path in repo -> bytes, text or a local path) as a dataset.

        ``datasets.load_dataset(repo_id)`` reads it like any Hub dataset: data files laid out as the Hub
        expects (``train.csv``, ``data/train-*.parquet``, ``train/<class>/<image>`` for an image folder, ...) or
        configured by a ``README.md`` YAML header. Returns the commit sha of ``main``.
        """
        meta = dict(license=None, tags=list(tags), downloads=0, likes=0, trendingScore=0,
                    createdAt=None, lastModified=None)
        return self._add("dataset", repo_id, _read_files(folder, files), private=private, gated=gated,
                         tokens=tokens, meta=meta)

    def _add(self, repo_type, repo_id, content, *, private, gated, tokens, meta) -> str:
        if repo_id.count("/") != 1:
            raise ValueError(f"repo ids are 'namespace/name', got {repo_id!r}")
        with self._lock:
            self._clock += 1
            stamp = f"2024-01-01T00:00:{self._clock % 60:02d}.000Z"
            meta["createdAt"] = meta["createdAt"] or stamp
            meta["lastModified"] = meta["lastModified"] or stamp
            existing = self._repos.get((repo_type, repo_id))
            if existing is not None:  # a new commit on main: older shas stay downloadable, as on the Hub
                sha = _commit_sha(content, existing.refs["main"], repo_id)
                existing.snapshots[sha] = content
                existing.refs["main"] = sha
                existing.private, existing.tokens, existing.meta = private, frozenset(tokens), meta
                existing.gated = "auto" if gated is True else gated
                return sha
            sha = _commit_sha(content, None, repo_id)
            self._repos[(repo_type, repo_id)] = _Repo(
                repo_type, repo_id, {sha: content}, {"main": sha}, private,
                "auto" if gated is True else gated, frozenset(tokens), meta,
            )
        return sha

    # -- what tests inspect ----------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        """Requests whose path starts with ``path`` (and with ``method``, when given)."""
        return [r for r in self.requests if r.path.startswith(path) and method in (None, r.method)]

    @property
    def commits(self) -> list[Commit]:
        with self._lock:
            return list(self._commits)

    @property
    def pull_requests(self) -> list[Commit]:
        return [c for c in self.commits if c.pr_num is not None]

    def file(self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "model") -> bytes:
        """The content of ``path`` at ``revision`` (a branch, ``refs/pr/N`` or a sha), as served."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return repo.snapshots[repo.resolve(revision)][path]

    # -- faults ----------------------------------------------------------------------------------------------------
    def fail(self, path: str, *, status: int = 500, times: int = 1, method: str | None = None) -> None:
        """Answer the next ``times`` requests whose path matches the regex ``path`` with ``status``."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path), method, times, status=status))

    def delay(self, path: str, seconds: float, *, times: int = 1, method: str | None = None) -> None:
        """Hold the next ``times`` requests whose path matches the regex ``path`` for ``seconds`` before answering."""
        with self._lock:
            self._faults.append(_Fault(re.compile(path), method, times, seconds=seconds))

    def _take_faults(self, method: str, path: str) -> tuple[int | None, float]:
        status, seconds = None, 0.0
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.pattern.search(path) and fault.method in (None, method):
                    fault.times -= 1
                    status = status or fault.status
                    seconds += fault.seconds
        return status, seconds

    # -- request handling (called from the handler threads) --------------------------------------------------------
    def _log(self, request: Request, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._requests.append(request)

    def _repo(self, repo_type: str, repo_id: str) -> _Repo | None:
        with self._lock:
            return self._repos.get((repo_type, repo_id))

    def _can_read(self, repo: _Repo, token: str | None) -> bool:
        return not repo.private or token in repo.tokens

    def _listing(self, repo_type: str, query: dict[str, list[str]], token: str | None) -> list[_Repo]:
        with self._lock:
            repos = [r for r in self._repos.values() if r.repo_type == repo_type and self._can_read(r, token)]
        wanted = set(query.get("filter", []))
        repos = [r for r in repos if wanted <= set(self._tags(r))]
        if "pipeline_tag" in query:
            repos = [r for r in repos if r.meta.get("pipeline_tag") == query["pipeline_tag"][0]]
        if "author" in query:
            repos = [r for r in repos if r.repo_id.split("/")[0] == query["author"][0]]
        if "search" in query:
            repos = [r for r in repos if query["search"][0].lower() in r.repo_id.lower()]
        if "gated" in query:
            repos = [r for r in repos if bool(r.gated) == (query["gated"][0].lower() == "true")]
        sort = query.get("sort", ["trendingScore"])[0]
        if sort not in _SORT_KEYS:
            raise _HttpError(400, f"Invalid sort parameter {sort!r}", "BadRequest")
        return sorted(repos, key=lambda r: (r.meta[sort], r.repo_id), reverse=True)

    def _tags(self, repo: _Repo) -> list[str]:
        """Tags as the Hub computes them: the card's, plus library, architecture, weights format and licence."""
        tags = list(repo.meta["tags"])
        files = repo.snapshots[repo.refs["main"]]
        config = _json_or_empty(files.get("config.json"))
        extra = [repo.meta.get("library_name"), config.get("model_type"), repo.meta.get("pipeline_tag")]
        if any(p.endswith(".safetensors") for p in files):
            extra.append("safetensors")
        if repo.meta.get("license"):
            extra.append(f"license:{repo.meta['license']}")
        if "auto_map" in config:
            extra.append("custom_code")
        return tags + [t for t in extra if t and t not in tags]

    def _info(self, repo: _Repo, sha: str, expand: list[str] | None, blobs: bool) -> dict:
        """The JSON of ``GET /api/models/{id}``: all properties, or only those in ``expand`` (plus ``id``)."""
        files = repo.snapshots[sha]
        config = _json_or_empty(files.get("config.json"))
        siblings = []
        for path, content in sorted(files.items()):
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=len(content), blobId=_git_blob_sha(content))
                if path.endswith(_LFS_SUFFIXES):
                    sibling["lfs"] = {"sha256": _etag(path, content), "size": len(content), "pointerSize": 134}
            siblings.append(sibling)
        card = {"license": repo.meta["license"]} if repo.meta.get("license") else {}
        model_index = _card_header(files.get("README.md")).get("model-index")
        info = {
            "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": sha, "private": repo.private,
            "gated": repo.gated, "disabled": False, "downloads": repo.meta["downloads"], "likes": repo.meta["likes"],
            "trendingScore": repo.meta["trendingScore"], "createdAt": repo.meta["createdAt"],
            "lastModified": repo.meta["lastModified"], "tags": self._tags(repo), "cardData": card,
            "siblings": siblings,
        }
        if repo.repo_type == "model":
            counts: dict[str, int] = {}
            for path, content in files.items():
                if path.endswith(".safetensors") and "/" not in path:  # the model's weights, not e.g. adapters/
                    for dtype, n in _safetensors_parameters(content).items():
                        counts[dtype] = counts.get(dtype, 0) + n
            info.update(
                pipeline_tag=repo.meta["pipeline_tag"], library_name=repo.meta["library_name"],
                config={k: config[k] for k in ("architectures", "model_type", "auto_map") if k in config},
            )
            if counts:
                info["safetensors"] = {"parameters": counts, "total": sum(counts.values())}
            if model_index:  # the Hub serves a card's model-index as its own property
                info["model-index"] = model_index
        if expand:
            info = {"id": repo.repo_id, **{k: info[k] for k in expand if k in info}}
        info["_id"] = hashlib.md5(repo.repo_id.encode()).hexdigest()[:24]
        return info

    def _entry(self, path: str, content: bytes) -> dict:
        entry = {"type": "file", "oid": _git_blob_sha(content), "size": len(content), "path": path}
        if path.endswith(_LFS_SUFFIXES):
            entry["lfs"] = {"oid": _etag(path, content), "size": len(content), "pointerSize": 134}
        return entry

    def _tree(self, files: Mapping[str, bytes], root: str, recursive: bool) -> list[dict]:
        prefix = f"{root.strip('/')}/" if root.strip("/") else ""
        out, folders = [], set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                out.append(self._entry(path, files[path]))
        return [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)] + out

    def _commit(self, repo: _Repo, revision: str, body: bytes, create_pr: bool) -> dict:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        operations = []
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else (
                    value["content"].encode())
                operations.append(Operation("file", value["path"], content))
            elif line["key"] == "lfsFile":
                with self._lock:
                    content = self._lfs.get(value["oid"])
                if content is None:
                    raise _HttpError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded", None)
                operations.append(Operation("lfsFile", value["path"], content))
            elif line["key"] != "header":
                operations.append(Operation(line["key"], value["path"]))
        with self._lock:
            parent = repo.resolve(revision)
            if parent is None:
                raise _HttpError(404, f"Revision Not Found for url: {revision}", "RevisionNotFound")
            files = dict(repo.snapshots[parent])
            for op in operations:
                if op.kind in ("file", "lfsFile"):
                    files[op.path] = op.content
                elif op.kind == "deletedFile":
                    files.pop(op.path, None)
                elif op.kind == "deletedFolder":
                    files = {p: c for p, c in files.items() if not p.startswith(op.path.rstrip("/") + "/")}
                else:
                    raise _HttpError(400, f"this test server does not take {op.kind!r} operations", "BadRequest")
            oid = _commit_sha(files, parent, header.get("summary", ""))
            repo.snapshots[oid] = files
            pr_num = None
            if create_pr:
                pr_num = 1 + sum(ref.startswith("refs/pr/") for ref in repo.refs)
                repo.refs[f"refs/pr/{pr_num}"] = oid
            else:
                repo.refs[revision if revision in repo.refs else "main"] = oid
            self._commits.append(Commit(
                repo.repo_id, repo.repo_type, revision, oid, header.get("summary", ""),
                header.get("description", ""), tuple(operations), pr_num,
            ))
        prefix = _URL_PREFIX[repo.repo_type]
        answer = {"commitOid": oid, "commitUrl": f"{self.url}/{prefix}{repo.repo_id}/commit/{oid}"}
        if pr_num is not None:
            answer["pullRequestUrl"] = f"{self.url}/{prefix}{repo.repo_id}/discussions/{pr_num}"
        return answer


    def _create(self, payload: dict, token: str | None) -> dict:
        """``create_repo``: an empty repo (one commit with ``.gitattributes``), readable by its creator's token."""
        repo_type = payload.get("type") or "model"
        if token is None:
            raise _HttpError(401, "Invalid username or password.", None)
        if repo_type not in _URL_PREFIX:
            raise _HttpError(400, f"this test server hosts {sorted(_URL_PREFIX)} repos, not {repo_type!r}", None)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if self._repo(repo_type, repo_id) is not None:
            raise _HttpError(409, "You already created this repo", None)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        meta = dict(license=None, tags=[], pipeline_tag=None, library_name=None, downloads=0, likes=0,
                    trendingScore=0, createdAt=None, lastModified=None)
        self._add(repo_type, repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                  private=private, gated=False, tokens=[token], meta=meta)
        prefix = _URL_PREFIX[repo_type]
        return {"url": f"{self.url}/{prefix}{repo_id}", "name": repo_id}

    def _lfs_batch(self, payload: dict) -> dict:
        """The LFS batch API (basic transfer): an upload URL on this server for each object not stored yet."""
        objects = []
        for obj in payload.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            with self._lock:
                known = obj["oid"] in self._lfs
            if not known:
                answer["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"}}
            objects.append(answer)
        return {"transfer": "basic", "objects": objects}

    def _lfs_store(self, oid: str, content: bytes) -> dict:
        if hashlib.sha256(content).hexdigest() != oid:
            raise _HttpError(400, f"uploaded content does not hash to {oid}", None)
        with self._lock:
            self._lfs[oid] = content
        return {}


def _card_header(content: bytes | None) -> dict:
    """The YAML header of a README.md as a dict ({} when absent or unreadable)."""
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", (content or b"").decode("utf-8", "replace"), re.S)
    try:
        header = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        return {}
    return header if isinstance(header, dict) else {}


def _json_or_empty(content: bytes | None) -> dict:
    try:
        return json.loads(content) if content else {}
    except ValueError:
        return {}


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}  # web and resolve URLs per repo type
_RESOLVE = re.compile(
    r"^/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$"
)
_API = re.compile(
    r"^/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
    r"(?:/(?P<action>revision|tree|paths-info|preupload|commit)(?:/(?P<rev>[^/]+)(?P<rest>/.*)?)?)?$"
)


def _make_handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle's algorithm and the client's delayed ACK
            # hold every answer ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format, *args):  # noqa: A002 - keep test output quiet; the log is hub.requests
            pass

        def do_GET(self):
            self._handle()

        def do_HEAD(self):
            self._handle()

        def do_POST(self):
            self._handle()

        def do_PUT(self):
            self._handle()

        # -- plumbing ------------------------------------------------------------------------------------------
        def _handle(self) -> None:
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            auth = self.headers.get("Authorization", "")
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
            # Logged by _send just before the answer goes out, so a test that got its answer sees the request.
            self._pending = ((self.command, unquote(path), query, token is not None), hub._generation)
            status, seconds = hub._take_faults(self.command, path)
            if seconds:
                time.sleep(seconds)
            try:
                try:
                    if status is not None:
                        raise _HttpError(status, f"injected fault {status}", None)
                    self._route(path, query, body, token)
                except _HttpError as exc:
                    self._send_json({"error": exc.message}, status=exc.status,
                                    headers={"X-Error-Code": exc.code} if exc.code else {})
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
                self.close_connection = True

        def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] = ()) -> int:
            fields, generation = self._pending
            hub._log(Request(*fields, status), generation)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in dict(headers).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return status

        def _send_json(self, payload, *, status: int = 200, headers: Mapping[str, str] = ()) -> int:
            return self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _readable(self, repo_type: str, repo_id: str, token: str | None) -> _Repo:
            repo = hub._repo(repo_type, repo_id)
            if repo is None or not hub._can_read(repo, token):
                # The Hub answers 401 for a private repo without access, 404 when there is a token: never tells.
                raise _HttpError(401 if token is None and repo is not None else 404,
                                 f"Repository Not Found for url: {self.path}", "RepoNotFound")
            return repo

        def _sha(self, repo: _Repo, revision: str) -> str:
            sha = repo.resolve(unquote(revision))
            if sha is None:
                raise _HttpError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
            return sha

        # -- routes --------------------------------------------------------------------------------------------
        def _route(self, path: str, query: dict[str, list[str]], body: bytes, token: str | None) -> int:
            if path in ("/api/models", "/api/datasets", "/api/spaces"):
                return self._list(path, query, token)
            if path == "/api/validate-yaml":
                return self._send_json({"errors": [], "warnings": []})
            if path == "/api/repos/create" and self.command == "POST":
                return self._send_json(hub._create(json.loads(body or b"{}"), token))
            if path.endswith(".git/info/lfs/objects/batch") and self.command == "POST":
                return self._send_json(hub._lfs_batch(json.loads(body)))
            if path.startswith("/lfs-upload/") and self.command == "PUT":
                return self._send_json(hub._lfs_store(path[len("/lfs-upload/"):], body))
            if match := _RESOLVE.match(path):
                return self._resolve(match, token)
            if match := _API.match(path):
                return self._api(match, query, body, token)
            raise _HttpError(404, f"this test server does not serve {self.command} {path}", None)

        def _list(self, path: str, query: dict[str, list[str]], token: str | None) -> int:
            repo_type = path[len("/api/"):-1]
            repos = hub._listing(repo_type, query, token)
            start = int(query.get("cursor", ["0"])[0])
            size = min(int(query.get("limit", [hub.page_size])[0]), hub.page_size)
            expand = query.get("expand") or None
            page = [hub._info(r, r.refs["main"], expand, blobs=False) for r in repos[start:start + size]]
            headers = {}
            if start + size < len(repos):
                next_query = {k: v for k, v in query.items() if k != "cursor"} | {"cursor": [str(start + size)]}
                headers["Link"] = f'<{hub.url}{path}?{urlencode(next_query, doseq=True)}>; rel="next"'
            return self._send_json(page, headers=headers)

        def _api(self, match: re.Match, query: dict[str, list[str]], body: bytes, token: str | None) -> int:
            repo_type = match["type"][:-1]
            repo = self._readable(repo_type, match["repo"], token)
            action, rest = match["action"], unquote(match["rest"] or "")
            if action in (None, "revision") and self.command == "GET":
                sha = self._sha(repo, match["rev"] or "main")
                return self._send_json(hub._info(repo, sha, query.get("expand") or None,
                                                 blobs=query.get("blobs", ["false"])[0].lower() in ("1", "true")))
            if action == "tree":
                sha = self._sha(repo, match["rev"])
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                entries = hub._tree(repo.snapshots[sha], rest, recursive)
                if rest.strip("/") and not entries:
                    raise _HttpError(404, f"Entry not found: {rest}", "EntryNotFound")
                return self._send_json(entries)
            if action == "paths-info":
                sha = self._sha(repo, match["rev"])
                form = parse_qs(body.decode())
                wanted = form.get("paths", []) or json.loads(body or b"{}").get("paths", [])
                files = repo.snapshots[sha]
                found = [hub._entry(p, files[p]) for p in wanted if p in files]
                folders = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": p.rstrip("/")} for p in wanted
                           if p not in files and any(f.startswith(p.rstrip("/") + "/") for f in files)]
                return self._send_json(found + folders)
            if action == "preupload" and self.command == "POST":
                self._sha(repo, match["rev"])
                files = json.loads(body)["files"]
                return self._send_json({"files": [
                    {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(_LFS_SUFFIXES) else "regular",
                     "shouldIgnore": False} for f in files]})
            if action == "commit" and self.command == "POST":
                create_pr = query.get("create_pr", ["0"])[0].lower() in ("1", "true")
                return self._send_json(hub._commit(repo, unquote(match["rev"]), body, create_pr))
            raise _HttpError(404, f"this test server does not serve {self.command} {self.path}", None)

        def _resolve(self, match: re.Match, token: str | None) -> int:
            repo_type = match["type"][:-1] if match["type"] else "model"
            repo = self._readable(repo_type, match["repo"], token)
            if repo.gated and token not in repo.tokens:
                raise _HttpError(401 if token is None else 403,
                                 f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                                 "authenticated to access it. Please log in.", "GatedRepo")
            sha = self._sha(repo, match["rev"])
            filename = unquote(match["file"])
            content = repo.snapshots[sha].get(filename)
            if content is None:
                raise _HttpError(404, f"Entry not found: {filename}", "EntryNotFound")
            headers = {"X-Repo-Commit": sha, "ETag": f'"{_etag(filename, content)}"', "Accept-Ranges": "bytes"}
            ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if ranged:
                start = int(ranged[1])
                end = min(int(ranged[2]) if ranged[2] else len(content) - 1, len(content) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
                return self._send(206, content[start:end + 1], "application/octet-stream", headers)
            return self._send(200, content, "application/octet-stream", headers)

    return Handler

