from rp_pipeline.defs.build import build_definitions
from rp_pipeline.settings import Settings

defs = build_definitions(Settings())
