"""How a stored record is written: canonical JSON, the same bytes for the same record.

Each document carries its format version (`"v"`); documents of the first
format, written before versions were, have none and read as version 1.
"""

from __future__ import annotations

import json

from psi.errors import ConfigurationError
from psi.records import IdentityDocument, PartialDate, Record

FORMAT_VERSION = 1
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)  # one encoder: json.dumps builds one per call


def record_to_json(record: Record) -> str:
    doc = {"v": FORMAT_VERSION, "record_id": record.record_id, "name": record.name,
           "birth_date": record.birth_date.isoformat() if record.birth_date else None,
           "nationality": record.nationality, "reference": record.reference, "category": record.category,
           "documents": [{"doc_type": d.doc_type, "number": d.number, "country": d.country}
                         for d in record.documents], "aliases": list(record.aliases),
           "given_name": record.given_name, "family_name": record.family_name, "sex": record.sex,
           "place_of_birth": record.place_of_birth}
    return _JSON.encode(doc)


def record_from_json(text: str) -> Record:
    doc = json.loads(text)
    version = doc.get("v", 1)
    if version != FORMAT_VERSION:
        raise ConfigurationError(
            f"stored record '{doc.get('record_id', '?')}' has format version {version}, which this code does not "
            f"know (it reads version {FORMAT_VERSION}); upgrade the software to read this store")
    return Record(
        record_id=doc["record_id"], name=doc["name"],
        birth_date=PartialDate.parse(doc["birth_date"]) if doc["birth_date"] else None,
        nationality=doc["nationality"],
        documents=tuple(IdentityDocument(**d) for d in doc["documents"]),
        reference=doc["reference"], category=doc["category"], aliases=tuple(doc.get("aliases", ())),
        given_name=doc.get("given_name", ""), family_name=doc.get("family_name", ""), sex=doc.get("sex", ""),
        place_of_birth=doc.get("place_of_birth", ""),
    )
