"""CrewAI artefacts: event-bus JSONL, flow checkpoints, crew/task outputs, ``output_log_file``."""

from mast.ingest.formats.crewai.importer import (CrewAICheckpointImporter, CrewAIEventsImporter, CrewAILogImporter,
                                                 CrewOutputImporter)

__all__ = ["CrewAICheckpointImporter", "CrewAIEventsImporter", "CrewAILogImporter", "CrewOutputImporter"]
