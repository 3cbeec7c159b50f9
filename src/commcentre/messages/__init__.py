"""Exchange messages: input schemas and blind-index identifiers."""
