-- 0011: supervisors inside a conversation (issue 18).
--
-- A supervisor may be linked to an agent account (`wxkf user add --role
-- supervisor --agent ACCOUNT`): the identity it serves users under after
-- a take-over (POST /api/v1/sessions/{openid}/takeover). An agent user
-- still needs its agent, an admin has none.
ALTER TABLE staff_users DROP CONSTRAINT staff_users_check;
ALTER TABLE staff_users ADD CONSTRAINT staff_users_agent_role
    CHECK (CASE role WHEN 'agent' THEN agent IS NOT NULL
                     WHEN 'admin' THEN agent IS NULL
                     ELSE true END);

-- A whisper (POST /api/v1/sessions/{openid}/whisper): an internal note
-- staff write into a conversation, never sent to WeChat. The archiver
-- keeps it with the conversation's messages as direction 'w' (its text
-- in content, its author in payload); the reports count only 'i' and
-- 'o', the conversation export leaves 'w' out.
ALTER TABLE messages DROP CONSTRAINT messages_direction_check;
ALTER TABLE messages ADD CONSTRAINT messages_direction_check
    CHECK (direction IN ('i', 'o', 'w'));
