-- Model prices (Archon's shape): USD per 1,000 tokens, one row per price change.
--
-- The exporter prices a request with the row effective at the request's time; a model name
-- matches a price row exactly, or as that row plus a snapshot suffix ("-20250929",
-- "-2024-07-18", "@20250929", "-latest"), after any "provider/" prefix is stripped.

CREATE TABLE archon_llm_pricing (
    id                  serial PRIMARY KEY,
    model_name          varchar(100) NOT NULL,
    provider            varchar(50) NOT NULL,
    input_price_per_1k  numeric(10, 6) NOT NULL CHECK (input_price_per_1k >= 0),
    output_price_per_1k numeric(10, 6) NOT NULL CHECK (output_price_per_1k >= 0),
    effective_date      date NOT NULL DEFAULT current_date,
    notes               text,
    CONSTRAINT unique_model_provider_date UNIQUE (model_name, provider, effective_date)
);

CREATE INDEX idx_archon_llm_pricing_model_provider
    ON archon_llm_pricing (model_name, provider, effective_date DESC);

COMMENT ON TABLE archon_llm_pricing IS 'LLM list prices in USD per 1k tokens, by effective date';

-- List prices per 1k tokens (the providers publish per 1M: divide by 1,000). Standard tier,
-- no batch or cache discounts, shortest context tier. Add a row with a later effective_date
-- when a price changes; older requests keep their price.
INSERT INTO archon_llm_pricing (model_name, provider, input_price_per_1k, output_price_per_1k, effective_date, notes) VALUES
    -- Anthropic
    ('claude-opus-4-5',            'Anthropic', 0.005,    0.025,   '2025-11-24', 'Claude Opus 4.5'),
    ('claude-opus-4-1',            'Anthropic', 0.015,    0.075,   '2025-08-05', 'Claude Opus 4.1'),
    ('claude-opus-4',              'Anthropic', 0.015,    0.075,   '2025-05-22', 'Claude Opus 4'),
    ('claude-sonnet-4-5',          'Anthropic', 0.003,    0.015,   '2025-09-29', 'Claude Sonnet 4.5 (prompts up to 200k)'),
    ('claude-sonnet-4',            'Anthropic', 0.003,    0.015,   '2025-05-22', 'Claude Sonnet 4 (prompts up to 200k)'),
    ('claude-haiku-4-5',           'Anthropic', 0.001,    0.005,   '2025-10-15', 'Claude Haiku 4.5'),
    ('claude-3-7-sonnet',          'Anthropic', 0.003,    0.015,   '2025-02-24', 'Claude 3.7 Sonnet'),
    ('claude-3-5-haiku',           'Anthropic', 0.0008,   0.004,   '2024-11-04', 'Claude 3.5 Haiku'),
    ('claude-3-5-sonnet',          'Anthropic', 0.003,    0.015,   '2024-06-20', 'Claude 3.5 Sonnet'),
    ('claude-3-opus',              'Anthropic', 0.015,    0.075,   '2024-02-29', 'Claude 3 Opus'),
    ('claude-3-haiku',             'Anthropic', 0.00025,  0.00125, '2024-03-07', 'Claude 3 Haiku'),
    -- OpenAI
    ('gpt-5',                      'OpenAI',    0.00125,  0.010,   '2025-08-07', 'GPT-5'),
    ('gpt-5-mini',                 'OpenAI',    0.00025,  0.002,   '2025-08-07', 'GPT-5 mini'),
    ('gpt-5-nano',                 'OpenAI',    0.00005,  0.0004,  '2025-08-07', 'GPT-5 nano'),
    ('gpt-4.1',                    'OpenAI',    0.002,    0.008,   '2025-04-14', 'GPT-4.1'),
    ('gpt-4.1-mini',               'OpenAI',    0.0004,   0.0016,  '2025-04-14', 'GPT-4.1 mini'),
    ('gpt-4.1-nano',               'OpenAI',    0.0001,   0.0004,  '2025-04-14', 'GPT-4.1 nano'),
    ('o3',                         'OpenAI',    0.002,    0.008,   '2025-06-10', 'o3 (after the June 2025 price cut)'),
    ('o4-mini',                    'OpenAI',    0.0011,   0.0044,  '2025-04-16', 'o4-mini'),
    ('gpt-4o',                     'OpenAI',    0.0025,   0.010,   '2024-08-06', 'GPT-4o'),
    ('gpt-4o-mini',                'OpenAI',    0.00015,  0.0006,  '2024-07-18', 'GPT-4o mini'),
    ('gpt-4-turbo',                'OpenAI',    0.010,    0.030,   '2024-04-09', 'GPT-4 Turbo'),
    ('gpt-4',                      'OpenAI',    0.030,    0.060,   '2023-03-14', 'GPT-4'),
    ('gpt-3.5-turbo',              'OpenAI',    0.0005,   0.0015,  '2024-01-25', 'GPT-3.5 Turbo'),
    -- Google
    ('gemini-2.5-pro',             'Google',    0.00125,  0.010,   '2025-06-17', 'Gemini 2.5 Pro (prompts up to 200k)'),
    ('gemini-2.5-flash',           'Google',    0.0003,   0.0025,  '2025-06-17', 'Gemini 2.5 Flash'),
    ('gemini-2.5-flash-lite',      'Google',    0.0001,   0.0004,  '2025-07-22', 'Gemini 2.5 Flash-Lite'),
    ('gemini-2.0-flash',           'Google',    0.0001,   0.0004,  '2025-02-05', 'Gemini 2.0 Flash'),
    ('gemini-2.0-flash-lite',      'Google',    0.000075, 0.0003,  '2025-02-25', 'Gemini 2.0 Flash-Lite'),
    ('gemini-1.5-pro',             'Google',    0.00125,  0.005,   '2024-10-01', 'Gemini 1.5 Pro (prompts up to 128k)'),
    ('gemini-1.5-flash',           'Google',    0.000075, 0.0003,  '2024-08-12', 'Gemini 1.5 Flash (prompts up to 128k)')
ON CONFLICT (model_name, provider, effective_date) DO NOTHING;

-- The price row for a model at a time: exact name first, else the longest price row the name
-- extends by a snapshot suffix; the newest effective_date not after `at`.
CREATE FUNCTION archon_llm_price_at(
    p_model text,
    p_at timestamptz DEFAULT now(),
    p_provider text DEFAULT NULL
)
RETURNS TABLE (model_name varchar, provider varchar, input_price_per_1k numeric, output_price_per_1k numeric)
LANGUAGE sql
STABLE
AS $fn$
    WITH wanted AS (
        SELECT lower(regexp_replace(p_model, '^.*/', '')) AS name
    )
    SELECT p.model_name, p.provider, p.input_price_per_1k, p.output_price_per_1k
      FROM archon_llm_pricing p, wanted w
     WHERE (p_provider IS NULL OR lower(p.provider) = lower(p_provider))
       AND p.effective_date <= p_at::date
       AND left(w.name, length(p.model_name)) = lower(p.model_name)
       AND substr(w.name, length(p.model_name) + 1)
           ~ '^([-@]?[0-9]{8}|-[0-9]{4}-[0-9]{2}-[0-9]{2}|-latest|@.*)?$'
     ORDER BY length(p.model_name) DESC, p.effective_date DESC
     LIMIT 1
$fn$;

COMMENT ON FUNCTION archon_llm_price_at(text, timestamptz, text) IS
    'The archon_llm_pricing row that prices a model name at a time (snapshot suffixes allowed)';
