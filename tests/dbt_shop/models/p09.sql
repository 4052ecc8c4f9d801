select id as pay_id, id as order_id, 10 * id as amt from {{ ref('raw_orders') }}
