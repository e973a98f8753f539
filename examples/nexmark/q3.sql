-- Nexmark q3, local item suggestion: auctions of category 10 by sellers in Oregon, Idaho or
-- California (this generator writes states in lower case). A regular join of two streams:
-- its 'state.ttl' keeps each person and auction joinable for an hour of event time.
CREATE STREAM nexmark_q3 WITH ('state.ttl' = '1h') AS
SELECT p.name, p.city, p.state, a.id
FROM auction AS a INNER JOIN person AS p ON a.seller = p.id
WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca');
