"""vitcourse: the one library the ViT course's chapters, assignments and autograder share.

Chapters build each piece step by step and then import the copy kept here, so the book
and the library never diverge.
"""

from vitcourse.profile import get_profile, Profile
from vitcourse.device import get_device, seed_everything

__all__ = ["get_profile", "Profile", "get_device", "seed_everything"]
__version__ = "0.1.0"
