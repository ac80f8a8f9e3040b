-- 0007: the handover — a transfer (POST /api/v1/sessions/{openid}/transfer)
-- takes an optional note of at most 200 characters for its receiver. The
-- giver (the agent's account; NULL for an admin or a re-route) and the
-- note travel in the transfer's event and the archiver keeps them with
-- the transfer. A transfer to a group nobody in could take the user at
-- once is kept too, as kind `queue` (to_agent NULL).
ALTER TABLE transfers ADD COLUMN by_agent text;
ALTER TABLE transfers ADD COLUMN note text CHECK (char_length(note) <= 200);
