"""The LLM layer on litellm. Set before litellm is ever imported: its cost map is read
from the package, never fetched (nothing may reach the internet at run time)."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
