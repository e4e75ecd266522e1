-- A finding keyed on a subnet (ip24) or an autonomous system (asn) is about
-- every address inside it: these columns let a search by address find it.
ALTER TABLE findings ADD COLUMN subnet TEXT NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN asn TEXT NOT NULL DEFAULT '';

-- Fill them for the findings stored before, from the group key in the
-- document ("ip24=203.0.113.0/24", "asn=AS64500", possibly beside other
-- keys, comma-separated).
UPDATE findings SET
	subnet = CASE WHEN instr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',', ',ip24=') > 0 THEN
		substr(substr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',',
			instr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',', ',ip24=') + 6), 1,
			instr(substr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',',
				instr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',', ',ip24=') + 6), ',') - 1)
		ELSE '' END,
	asn = CASE WHEN instr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',', ',asn=') > 0 THEN
		substr(substr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',',
			instr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',', ',asn=') + 5), 1,
			instr(substr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',',
				instr(',' || json_extract(CAST(doc AS TEXT), '$.group_key') || ',', ',asn=') + 5), ',') - 1)
		ELSE '' END
WHERE json_extract(CAST(doc AS TEXT), '$.group_key') LIKE '%ip24=%'
   OR json_extract(CAST(doc AS TEXT), '$.group_key') LIKE '%asn=%';
