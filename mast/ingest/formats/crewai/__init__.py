"""CrewAI artefacts: event-bus JSONL, flow checkpoints, crew/task outputs, ``output_log_file``, step_callback dumps."""

from mast.ingest.formats.crewai.importer import (CrewAICheckpointImporter, CrewAIEventsImporter, CrewAILogImporter,
                                                 CrewOutputImporter)
from mast.ingest.formats.crewai.step_callback import CrewAIStepCallbackImporter

__all__ = ["CrewAICheckpointImporter", "CrewAIEventsImporter", "CrewAILogImporter", "CrewAIStepCallbackImporter",
           "CrewOutputImporter"]
