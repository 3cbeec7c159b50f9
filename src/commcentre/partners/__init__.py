"""Partner registry: who commcentre delivers to and receives from."""
