"""Protocol core of the private record matcher: pure functions and state machines, no I/O."""

from psi.client_query import CardinalityQuery, Hit, IntersectionQuery, MatchResult, check_parameters
from psi.errors import PsiError
from psi.messages import Limits, Mode, Parameters
from psi.profiles import EXACT_PROFILE, PROFILES, MatchKey, Profile, Rule, Strength
from psi.records import IdentityDocument, PartialDate, Record
from psi.server_session import ServerSession
from psi.tagset import TagIndex, TagSnapshot, build_snapshot

__all__ = [
    "EXACT_PROFILE",
    "PROFILES",
    "CardinalityQuery",
    "Hit",
    "IdentityDocument",
    "IntersectionQuery",
    "Limits",
    "MatchKey",
    "MatchResult",
    "Mode",
    "Parameters",
    "PartialDate",
    "Profile",
    "PsiError",
    "Record",
    "Rule",
    "ServerSession",
    "Strength",
    "TagIndex",
    "TagSnapshot",
    "build_snapshot",
    "check_parameters",
]
