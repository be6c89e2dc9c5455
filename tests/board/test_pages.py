"""The board's shell and assets over HTTP: what the page is rendered with, and the files it
loads (which must ship inside the package, since users build nothing)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from huskies.project import Project
from huskies.web.board import STATIC_DIR, hand_moves

from ..web.support import error_of, make_project, served


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "repo")


def test_the_board_offers_the_moves_a_person_may_make_and_no_others():
    assert hand_moves() == {
        "backlog": ["coding", "archived"],
        "coding": ["backlog", "qa", "archived"],
        "qa": ["backlog", "coding", "archived"],
        "merge": ["backlog", "archived"],
        "done": ["archived"],
    }


async def test_every_view_is_the_shell_with_its_settings_and_modules(project: Project):
    async with served(project) as (_, api):
        pages = [await api.get(path) for path in ("/", "/board/items/7", "/board/costs")]
        assert {page.status_code for page in pages} == {200}
        assert len({page.text for page in pages}) == 1
        html = pages[0].text
        found = re.search(
            r'<script type="application/json" id="board-settings">(.*?)</script>', html
        )
        assert found is not None
        settings = json.loads(found[1])
        assert settings["stages"] == ["backlog", "coding", "qa", "merge", "done", "archived"]
        assert settings["moves"] == hand_moves()
        assert settings["unblockable"] == ["blocked", "merge_failed", "review_held"]
        import_map = re.search(r'<script type="importmap">(.*?)</script>', html)
        assert import_map is not None
        imports = json.loads(import_map[1])
        modules = {path.name for path in STATIC_DIR.glob("*.js")}
        mapped = imports["imports"]
        assert set(mapped) == {f"/board/static/{name}" for name in modules}
        preloaded = re.findall(r'<link rel="modulepreload" href="([^"]+)">', html)
        # The page asks at once for the modules the board needs, and for no others.
        assert mapped["/board/static/app.js"] in preloaded
        assert mapped["/board/static/item.js"] not in preloaded
        for module, address in mapped.items():
            source = await api.get(address)
            assert source.status_code == 200
            assert "javascript" in source.headers["content-type"]
            # Asked for by its digest, a file is kept for good; a new file has a new digest.
            assert "immutable" in source.headers["cache-control"]
            for imported in re.findall(r'from "\./([\w.]+)"', source.text):
                assert f"/board/static/{imported}" in mapped, f"{module} imports {imported}"
                if address in preloaded:
                    assert mapped[f"/board/static/{imported}"] in preloaded, imported
            again = await api.get(address, headers={"If-None-Match": source.headers["etag"]})
            assert again.status_code == 304
        # By its bare name (a stale page, a person): the file as it is now, checked each time.
        bare = await api.get("/board/static/app.js")
        assert bare.headers["cache-control"] == "no-cache"
        assert bare.text == (STATIC_DIR / "app.js").read_text()
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)">', html)
        assert stylesheet is not None
        assert (await api.get(stylesheet[1])).headers["content-type"].startswith("text/css")


async def test_an_unknown_board_address_is_a_404_in_the_api_shape(project: Project):
    async with served(project) as (_, api):
        error = error_of(await api.get("/board/nothing"), 404)
        assert "/board/nothing" in error["message"]
        error_of(await api.get("/board/static/missing.js"), 404)
        error_of(await api.get("/board/static/%2e%2e/__init__.py"), 404)
        error_of(await api.get("/board/items/seven"), 400)
