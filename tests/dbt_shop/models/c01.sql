select id, full_name, city from {{ ref('raw_customers') }}
