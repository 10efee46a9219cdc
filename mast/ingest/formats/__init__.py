"""One module (or package) per source format; :data:`mast.ingest.registry.BUILTINS` lists them.

A format module imports only shared ingest modules (``_util``, ``langchain_messages``,
``autogen_common``) and the model, never another format module.
"""
