-- Migration 0003: the piece boundaries of a generation answer, so a streamed cache hit replays the live
-- stream's exact events (edge/src/replay.ts). A JSON array of each piece's length in Unicode code points;
-- NULL for embeddings and for rows stored before this migration (a streamed request for such a row is
-- served live, and its answer then replaces the row with one that has pieces).
ALTER TABLE answer_cache ADD COLUMN pieces TEXT;
