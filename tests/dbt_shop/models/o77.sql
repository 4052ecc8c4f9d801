select id, customer_id, placed_on, status from {{ ref('raw_orders') }}
