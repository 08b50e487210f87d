"""JSON Feed 1.1, checked against the published schema and read as a client would."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from flask.testing import FlaskClient
from referencing import Registry, Resource

from .conftest import Newsroom

DATA = Path(__file__).parent / "data"
SCHEMA = json.loads((DATA / "jsonfeed-1.1.schema.json").read_text())
# The 1.1 schema builds on the 1.0 one, which it names by id; it is read from disk, never fetched.
REGISTRY = Registry().with_resource(
    "https://json.schemastore.org/feed-1",
    Resource.from_contents(json.loads((DATA / "jsonfeed-1.0.schema.json").read_text())),
)


def test_json_feed_is_valid_and_carries_photos_with_caption_and_credit(newsroom: Newsroom, client: FlaskClient) -> None:
    newsroom.article(
        "innlent",
        "gos",
        title="Eldgos",
        authors=["Anna Jónsdóttir"],
        topics=["Eldgos"],
        id="2024-0316-gos",
        date="2024-03-16T20:23:00Z",
        photos={"gos.jpg": (64, 48), "kort.png": (30, 20)},
        images=[
            {"file": "gos.jpg", "caption": "Hraunið rennur.", "credit": "Ljósmynd/Jón Pétursson", "alt": "Hraun"},
            {"file": "kort.png", "caption": "Kort.", "credit": "AFP/KCNA"},
        ],
    )
    response = client.get("/feeds/feed.json")
    assert response.mimetype == "application/feed+json"
    document = response.get_json(force=True)
    jsonschema.Draft4Validator(SCHEMA, registry=REGISTRY).validate(document)
    assert document["feed_url"] == "http://localhost/feeds/feed.json"
    assert document["language"] == "is"
    (item,) = document["items"]
    assert item["id"] == "tag:frettir.example.is,2024-03-16:2024-0316-gos"
    assert item["date_published"] == "2024-03-16T20:23:00+00:00"
    assert item["authors"] == [{"name": "Anna Jónsdóttir"}]
    assert item["tags"] == ["Innlent", "Eldgos"]
    assert item["image"] == "http://localhost/innlent/gos/gos.jpg"
    lead = newsroom.root / "innlent/gos/gos.jpg"
    assert item["attachments"][0] == {
        "url": "http://localhost/innlent/gos/gos.jpg",
        "mime_type": "image/jpeg",
        "title": "Hraunið rennur. (Ljósmynd/Jón Pétursson)",
        "size_in_bytes": lead.stat().st_size,
    }
    assert [(image["caption"], image["credit"]) for image in item["_media"]["images"]] == [
        ("Hraunið rennur.", "Ljósmynd/Jón Pétursson"),
        ("Kort.", "AFP/KCNA"),
    ]
