-- Demo warehouse of a mid-sized retail / e-commerce company (SQLite).
-- Tables are created in dependency order so every REFERENCES target already exists.

PRAGMA foreign_keys = ON;

-- ─── reference data ────────────────────────────────────────────────────────────
CREATE TABLE currencies (
    currency_id INTEGER PRIMARY KEY,
    currency_code CHAR(3) NOT NULL UNIQUE,
    currency_name VARCHAR(60) NOT NULL,
    symbol VARCHAR(5),
    decimal_places INTEGER NOT NULL DEFAULT 2
);

CREATE TABLE countries (
    country_id INTEGER PRIMARY KEY,
    iso_code CHAR(2) NOT NULL UNIQUE,
    country_name VARCHAR(80) NOT NULL,
    region_name VARCHAR(40),
    default_currency_id INTEGER REFERENCES currencies (currency_id)
);

CREATE TABLE exchange_rates (
    exchange_rate_id INTEGER PRIMARY KEY,
    from_currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    to_currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    rate_date DATE NOT NULL,
    rate NUMERIC(18, 8) NOT NULL,
    rate_source VARCHAR(40)
);

CREATE TABLE tax_rates (
    tax_rate_id INTEGER PRIMARY KEY,
    country_id INTEGER NOT NULL REFERENCES countries (country_id),
    tax_category VARCHAR(40) NOT NULL,
    rate_percent NUMERIC(6, 3) NOT NULL,
    valid_from DATE NOT NULL,
    valid_to DATE
);

-- ─── HR ────────────────────────────────────────────────────────────────────────
CREATE TABLE departments (
    department_id INTEGER PRIMARY KEY,
    department_name VARCHAR(80) NOT NULL,
    parent_department_id INTEGER REFERENCES departments (department_id),
    cost_center_code VARCHAR(20),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE positions (
    position_id INTEGER PRIMARY KEY,
    department_id INTEGER NOT NULL REFERENCES departments (department_id),
    title VARCHAR(80) NOT NULL,
    job_level INTEGER,
    min_salary NUMERIC(12, 2),
    max_salary NUMERIC(12, 2),
    is_open BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE employees (
    employee_id INTEGER PRIMARY KEY,
    first_name VARCHAR(60) NOT NULL,
    last_name VARCHAR(60) NOT NULL,
    work_email VARCHAR(120) NOT NULL UNIQUE,
    department_id INTEGER NOT NULL REFERENCES departments (department_id),
    position_id INTEGER REFERENCES positions (position_id),
    manager_employee_id INTEGER REFERENCES employees (employee_id),
    country_id INTEGER REFERENCES countries (country_id),
    hire_date DATE NOT NULL,
    termination_date DATE,
    employment_type VARCHAR(20) NOT NULL
);

CREATE TABLE salaries (
    salary_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    annual_amount NUMERIC(12, 2) NOT NULL,
    effective_from DATE NOT NULL,
    effective_to DATE,
    change_reason VARCHAR(60)
);

CREATE TABLE timesheets (
    timesheet_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    work_date DATE NOT NULL,
    hours_worked NUMERIC(5, 2) NOT NULL,
    overtime_hours NUMERIC(5, 2) NOT NULL DEFAULT 0,
    project_code VARCHAR(30),
    approved_by_employee_id INTEGER REFERENCES employees (employee_id)
);

CREATE TABLE leave_requests (
    leave_request_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    leave_type VARCHAR(30) NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    status VARCHAR(20) NOT NULL,
    approver_employee_id INTEGER REFERENCES employees (employee_id),
    requested_at TIMESTAMP NOT NULL
);

CREATE TABLE performance_reviews (
    performance_review_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    reviewer_employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    review_period VARCHAR(10) NOT NULL,
    overall_rating INTEGER NOT NULL,
    summary TEXT,
    completed_at TIMESTAMP
);

-- ─── finance ───────────────────────────────────────────────────────────────────
CREATE TABLE cost_centers (
    cost_center_id INTEGER PRIMARY KEY,
    cost_center_code VARCHAR(20) NOT NULL UNIQUE,
    cost_center_name VARCHAR(80) NOT NULL,
    department_id INTEGER REFERENCES departments (department_id),
    owner_employee_id INTEGER REFERENCES employees (employee_id),
    is_active BOOLEAN NOT NULL DEFAULT 1
);

CREATE TABLE gl_accounts (
    gl_account_id INTEGER PRIMARY KEY,
    account_number VARCHAR(20) NOT NULL UNIQUE,
    account_name VARCHAR(120) NOT NULL,
    account_type VARCHAR(20) NOT NULL,
    parent_gl_account_id INTEGER REFERENCES gl_accounts (gl_account_id),
    is_postable BOOLEAN NOT NULL DEFAULT 1
);

CREATE TABLE fiscal_periods (
    fiscal_period_id INTEGER PRIMARY KEY,
    fiscal_year INTEGER NOT NULL,
    period_number INTEGER NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,
    is_closed BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE journal_entries (
    journal_entry_id INTEGER PRIMARY KEY,
    fiscal_period_id INTEGER NOT NULL REFERENCES fiscal_periods (fiscal_period_id),
    entry_date DATE NOT NULL,
    source_document VARCHAR(40),
    description VARCHAR(255),
    posted_by_employee_id INTEGER REFERENCES employees (employee_id),
    posted_at TIMESTAMP
);

CREATE TABLE journal_lines (
    journal_line_id INTEGER PRIMARY KEY,
    journal_entry_id INTEGER NOT NULL REFERENCES journal_entries (journal_entry_id),
    gl_account_id INTEGER NOT NULL REFERENCES gl_accounts (gl_account_id),
    cost_center_id INTEGER REFERENCES cost_centers (cost_center_id),
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    debit_amount NUMERIC(14, 2) NOT NULL DEFAULT 0,
    credit_amount NUMERIC(14, 2) NOT NULL DEFAULT 0,
    line_memo VARCHAR(255)
);

CREATE TABLE budgets (
    budget_id INTEGER PRIMARY KEY,
    fiscal_period_id INTEGER NOT NULL REFERENCES fiscal_periods (fiscal_period_id),
    cost_center_id INTEGER NOT NULL REFERENCES cost_centers (cost_center_id),
    gl_account_id INTEGER NOT NULL REFERENCES gl_accounts (gl_account_id),
    budget_amount NUMERIC(14, 2) NOT NULL,
    version_label VARCHAR(20) NOT NULL DEFAULT 'original'
);

-- ─── catalogue ─────────────────────────────────────────────────────────────────
CREATE TABLE suppliers (
    supplier_id INTEGER PRIMARY KEY,
    supplier_name VARCHAR(120) NOT NULL,
    contact_email VARCHAR(120),
    phone VARCHAR(30),
    country_id INTEGER REFERENCES countries (country_id),
    currency_id INTEGER REFERENCES currencies (currency_id),
    payment_terms_days INTEGER NOT NULL DEFAULT 30,
    rating INTEGER
);

CREATE TABLE brands (
    brand_id INTEGER PRIMARY KEY,
    brand_name VARCHAR(80) NOT NULL UNIQUE,
    owner_supplier_id INTEGER REFERENCES suppliers (supplier_id),
    website_url VARCHAR(200),
    is_private_label BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE product_categories (
    product_category_id INTEGER PRIMARY KEY,
    category_name VARCHAR(80) NOT NULL,
    parent_category_id INTEGER REFERENCES product_categories (product_category_id),
    category_path VARCHAR(255),
    tax_category VARCHAR(40)
);

CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    sku VARCHAR(40) NOT NULL UNIQUE,
    product_name VARCHAR(200) NOT NULL,
    product_category_id INTEGER NOT NULL REFERENCES product_categories (product_category_id),
    brand_id INTEGER REFERENCES brands (brand_id),
    primary_supplier_id INTEGER REFERENCES suppliers (supplier_id),
    unit_cost NUMERIC(12, 2),
    list_price NUMERIC(12, 2) NOT NULL,
    weight_grams INTEGER,
    is_discontinued BOOLEAN NOT NULL DEFAULT 0,
    launched_on DATE
);

CREATE TABLE product_variants (
    product_variant_id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    variant_sku VARCHAR(50) NOT NULL UNIQUE,
    color VARCHAR(30),
    size_label VARCHAR(20),
    barcode VARCHAR(30),
    price_delta NUMERIC(12, 2) NOT NULL DEFAULT 0
);

CREATE TABLE price_lists (
    price_list_id INTEGER PRIMARY KEY,
    price_list_name VARCHAR(80) NOT NULL,
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    country_id INTEGER REFERENCES countries (country_id),
    valid_from DATE NOT NULL,
    valid_to DATE,
    is_default BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE price_list_items (
    price_list_item_id INTEGER PRIMARY KEY,
    price_list_id INTEGER NOT NULL REFERENCES price_lists (price_list_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    unit_price NUMERIC(12, 2) NOT NULL,
    min_quantity INTEGER NOT NULL DEFAULT 1
);

-- ─── customers and marketing ───────────────────────────────────────────────────
CREATE TABLE customer_segments (
    customer_segment_id INTEGER PRIMARY KEY,
    segment_name VARCHAR(60) NOT NULL UNIQUE,
    description VARCHAR(255),
    min_lifetime_value NUMERIC(12, 2)
);

CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    email VARCHAR(160) NOT NULL UNIQUE,
    first_name VARCHAR(60),
    last_name VARCHAR(60),
    phone VARCHAR(30),
    customer_segment_id INTEGER REFERENCES customer_segments (customer_segment_id),
    country_id INTEGER REFERENCES countries (country_id),
    signup_date DATE NOT NULL,
    marketing_opt_in BOOLEAN NOT NULL DEFAULT 0,
    is_business BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE customer_addresses (
    customer_address_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    address_type VARCHAR(20) NOT NULL,
    street_line VARCHAR(200) NOT NULL,
    city VARCHAR(80) NOT NULL,
    postal_code VARCHAR(20),
    country_id INTEGER NOT NULL REFERENCES countries (country_id),
    is_default BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE loyalty_accounts (
    loyalty_account_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL UNIQUE REFERENCES customers (customer_id),
    tier VARCHAR(20) NOT NULL,
    points_balance INTEGER NOT NULL DEFAULT 0,
    enrolled_at TIMESTAMP NOT NULL
);

CREATE TABLE campaigns (
    campaign_id INTEGER PRIMARY KEY,
    campaign_name VARCHAR(120) NOT NULL,
    objective VARCHAR(40),
    start_date DATE NOT NULL,
    end_date DATE,
    budget_amount NUMERIC(12, 2),
    currency_id INTEGER REFERENCES currencies (currency_id),
    owner_employee_id INTEGER REFERENCES employees (employee_id)
);

CREATE TABLE campaign_channels (
    campaign_channel_id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id),
    channel_name VARCHAR(40) NOT NULL,
    utm_source VARCHAR(60),
    utm_medium VARCHAR(60),
    allocated_budget NUMERIC(12, 2)
);

CREATE TABLE ad_spend (
    ad_spend_id INTEGER PRIMARY KEY,
    campaign_channel_id INTEGER NOT NULL REFERENCES campaign_channels (campaign_channel_id),
    spend_date DATE NOT NULL,
    impressions INTEGER NOT NULL DEFAULT 0,
    clicks INTEGER NOT NULL DEFAULT 0,
    spend_amount NUMERIC(12, 2) NOT NULL,
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id)
);

CREATE TABLE email_sends (
    email_send_id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns (campaign_id),
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    sent_at TIMESTAMP NOT NULL,
    opened_at TIMESTAMP,
    clicked_at TIMESTAMP,
    bounced BOOLEAN NOT NULL DEFAULT 0,
    unsubscribed BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE web_sessions (
    web_session_id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (customer_id),
    campaign_channel_id INTEGER REFERENCES campaign_channels (campaign_channel_id),
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    device_type VARCHAR(20),
    browser VARCHAR(40),
    landing_url VARCHAR(500),
    country_id INTEGER REFERENCES countries (country_id)
);

CREATE TABLE page_views (
    page_view_id INTEGER PRIMARY KEY,
    web_session_id INTEGER NOT NULL REFERENCES web_sessions (web_session_id),
    product_id INTEGER REFERENCES products (product_id),
    page_url VARCHAR(500) NOT NULL,
    viewed_at TIMESTAMP NOT NULL,
    time_on_page_seconds INTEGER
);

-- ─── inventory ─────────────────────────────────────────────────────────────────
CREATE TABLE warehouses (
    warehouse_id INTEGER PRIMARY KEY,
    warehouse_code VARCHAR(20) NOT NULL UNIQUE,
    warehouse_name VARCHAR(80) NOT NULL,
    city VARCHAR(80),
    country_id INTEGER NOT NULL REFERENCES countries (country_id),
    manager_employee_id INTEGER REFERENCES employees (employee_id),
    capacity_pallets INTEGER
);

CREATE TABLE stock_levels (
    stock_level_id INTEGER PRIMARY KEY,
    warehouse_id INTEGER NOT NULL REFERENCES warehouses (warehouse_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    quantity_on_hand INTEGER NOT NULL DEFAULT 0,
    quantity_reserved INTEGER NOT NULL DEFAULT 0,
    reorder_point INTEGER,
    bin_location VARCHAR(20),
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE purchase_orders (
    purchase_order_id INTEGER PRIMARY KEY,
    po_number VARCHAR(30) NOT NULL UNIQUE,
    supplier_id INTEGER NOT NULL REFERENCES suppliers (supplier_id),
    warehouse_id INTEGER NOT NULL REFERENCES warehouses (warehouse_id),
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    ordered_at TIMESTAMP NOT NULL,
    expected_delivery_date DATE,
    status VARCHAR(20) NOT NULL,
    buyer_employee_id INTEGER REFERENCES employees (employee_id)
);

CREATE TABLE purchase_order_lines (
    purchase_order_line_id INTEGER PRIMARY KEY,
    purchase_order_id INTEGER NOT NULL REFERENCES purchase_orders (purchase_order_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    quantity_ordered INTEGER NOT NULL,
    quantity_received INTEGER NOT NULL DEFAULT 0,
    unit_cost NUMERIC(12, 2) NOT NULL
);

CREATE TABLE supplier_invoices (
    supplier_invoice_id INTEGER PRIMARY KEY,
    supplier_id INTEGER NOT NULL REFERENCES suppliers (supplier_id),
    purchase_order_id INTEGER REFERENCES purchase_orders (purchase_order_id),
    invoice_number VARCHAR(40) NOT NULL,
    invoice_date DATE NOT NULL,
    due_date DATE NOT NULL,
    total_amount NUMERIC(14, 2) NOT NULL,
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    paid_at TIMESTAMP
);

CREATE TABLE stock_movements (
    stock_movement_id INTEGER PRIMARY KEY,
    warehouse_id INTEGER NOT NULL REFERENCES warehouses (warehouse_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    movement_type VARCHAR(20) NOT NULL,
    quantity INTEGER NOT NULL,
    purchase_order_line_id INTEGER REFERENCES purchase_order_lines (purchase_order_line_id),
    moved_at TIMESTAMP NOT NULL,
    reference_note VARCHAR(120)
);

CREATE TABLE stock_counts (
    stock_count_id INTEGER PRIMARY KEY,
    warehouse_id INTEGER NOT NULL REFERENCES warehouses (warehouse_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    counted_quantity INTEGER NOT NULL,
    system_quantity INTEGER NOT NULL,
    counted_by_employee_id INTEGER REFERENCES employees (employee_id),
    counted_at TIMESTAMP NOT NULL
);

-- ─── sales ─────────────────────────────────────────────────────────────────────
CREATE TABLE sales_channels (
    sales_channel_id INTEGER PRIMARY KEY,
    channel_name VARCHAR(40) NOT NULL UNIQUE,
    is_online BOOLEAN NOT NULL,
    commission_percent NUMERIC(5, 2)
);

CREATE TABLE promotions (
    promotion_id INTEGER PRIMARY KEY,
    promotion_name VARCHAR(120) NOT NULL,
    campaign_id INTEGER REFERENCES campaigns (campaign_id),
    discount_type VARCHAR(20) NOT NULL,
    discount_value NUMERIC(10, 2) NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP,
    product_category_id INTEGER REFERENCES product_categories (product_category_id)
);

CREATE TABLE coupons (
    coupon_id INTEGER PRIMARY KEY,
    coupon_code VARCHAR(30) NOT NULL UNIQUE,
    promotion_id INTEGER NOT NULL REFERENCES promotions (promotion_id),
    max_redemptions INTEGER,
    times_redeemed INTEGER NOT NULL DEFAULT 0,
    expires_at TIMESTAMP
);

CREATE TABLE payment_methods (
    payment_method_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    method_type VARCHAR(20) NOT NULL,
    card_brand VARCHAR(20),
    card_last4 CHAR(4),
    expires_on DATE,
    is_default BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    order_number VARCHAR(30) NOT NULL UNIQUE,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    sales_channel_id INTEGER NOT NULL REFERENCES sales_channels (sales_channel_id),
    shipping_address_id INTEGER REFERENCES customer_addresses (customer_address_id),
    coupon_id INTEGER REFERENCES coupons (coupon_id),
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    ordered_at TIMESTAMP NOT NULL,
    status VARCHAR(20) NOT NULL,
    subtotal_amount NUMERIC(14, 2) NOT NULL,
    tax_amount NUMERIC(14, 2) NOT NULL DEFAULT 0,
    total_amount NUMERIC(14, 2) NOT NULL
);

CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    product_variant_id INTEGER REFERENCES product_variants (product_variant_id),
    quantity INTEGER NOT NULL,
    unit_price NUMERIC(12, 2) NOT NULL,
    discount_amount NUMERIC(12, 2) NOT NULL DEFAULT 0,
    tax_rate_id INTEGER REFERENCES tax_rates (tax_rate_id)
);

CREATE TABLE order_status_history (
    order_status_history_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    from_status VARCHAR(20),
    to_status VARCHAR(20) NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    changed_by_employee_id INTEGER REFERENCES employees (employee_id)
);

CREATE TABLE invoices (
    invoice_id INTEGER PRIMARY KEY,
    invoice_number VARCHAR(30) NOT NULL UNIQUE,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    issued_on DATE NOT NULL,
    due_on DATE NOT NULL,
    total_amount NUMERIC(14, 2) NOT NULL,
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    status VARCHAR(20) NOT NULL
);

CREATE TABLE payments (
    payment_id INTEGER PRIMARY KEY,
    invoice_id INTEGER REFERENCES invoices (invoice_id),
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    payment_method_id INTEGER REFERENCES payment_methods (payment_method_id),
    amount NUMERIC(14, 2) NOT NULL,
    currency_id INTEGER NOT NULL REFERENCES currencies (currency_id),
    paid_at TIMESTAMP NOT NULL,
    provider_reference VARCHAR(80),
    status VARCHAR(20) NOT NULL
);

CREATE TABLE carriers (
    carrier_id INTEGER PRIMARY KEY,
    carrier_name VARCHAR(80) NOT NULL UNIQUE,
    service_level VARCHAR(30),
    tracking_url_template VARCHAR(300),
    is_active BOOLEAN NOT NULL DEFAULT 1
);

CREATE TABLE shipments (
    shipment_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    warehouse_id INTEGER NOT NULL REFERENCES warehouses (warehouse_id),
    carrier_id INTEGER NOT NULL REFERENCES carriers (carrier_id),
    tracking_number VARCHAR(60),
    shipped_at TIMESTAMP,
    delivered_at TIMESTAMP,
    shipping_cost NUMERIC(10, 2),
    status VARCHAR(20) NOT NULL
);

CREATE TABLE returns (
    return_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    requested_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP,
    return_reason VARCHAR(60) NOT NULL,
    refund_amount NUMERIC(12, 2),
    status VARCHAR(20) NOT NULL
);

CREATE TABLE return_items (
    return_item_id INTEGER PRIMARY KEY,
    return_id INTEGER NOT NULL REFERENCES returns (return_id),
    order_item_id INTEGER NOT NULL REFERENCES order_items (order_item_id),
    quantity INTEGER NOT NULL,
    item_condition VARCHAR(20),
    restocked BOOLEAN NOT NULL DEFAULT 0
);

CREATE TABLE loyalty_transactions (
    loyalty_transaction_id INTEGER PRIMARY KEY,
    loyalty_account_id INTEGER NOT NULL REFERENCES loyalty_accounts (loyalty_account_id),
    order_id INTEGER REFERENCES orders (order_id),
    points_delta INTEGER NOT NULL,
    transaction_type VARCHAR(20) NOT NULL,
    occurred_at TIMESTAMP NOT NULL
);

CREATE TABLE product_reviews (
    product_review_id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    order_id INTEGER REFERENCES orders (order_id),
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    review_title VARCHAR(120),
    review_text TEXT,
    is_verified_purchase BOOLEAN NOT NULL DEFAULT 0,
    reviewed_at TIMESTAMP NOT NULL
);

-- ─── customer support ──────────────────────────────────────────────────────────
CREATE TABLE sla_policies (
    sla_policy_id INTEGER PRIMARY KEY,
    policy_name VARCHAR(60) NOT NULL UNIQUE,
    priority VARCHAR(10) NOT NULL,
    first_response_minutes INTEGER NOT NULL,
    resolution_minutes INTEGER NOT NULL,
    business_hours_only BOOLEAN NOT NULL DEFAULT 1
);

CREATE TABLE support_tickets (
    support_ticket_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    order_id INTEGER REFERENCES orders (order_id),
    sla_policy_id INTEGER REFERENCES sla_policies (sla_policy_id),
    assigned_employee_id INTEGER REFERENCES employees (employee_id),
    subject VARCHAR(200) NOT NULL,
    channel VARCHAR(20) NOT NULL,
    priority VARCHAR(10) NOT NULL,
    status VARCHAR(20) NOT NULL,
    opened_at TIMESTAMP NOT NULL,
    first_response_at TIMESTAMP,
    resolved_at TIMESTAMP
);

CREATE TABLE ticket_comments (
    ticket_comment_id INTEGER PRIMARY KEY,
    support_ticket_id INTEGER NOT NULL REFERENCES support_tickets (support_ticket_id),
    author_employee_id INTEGER REFERENCES employees (employee_id),
    author_customer_id INTEGER REFERENCES customers (customer_id),
    body TEXT NOT NULL,
    is_internal BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE satisfaction_surveys (
    satisfaction_survey_id INTEGER PRIMARY KEY,
    support_ticket_id INTEGER NOT NULL REFERENCES support_tickets (support_ticket_id),
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    csat_score INTEGER NOT NULL,
    free_text_feedback TEXT,
    answered_at TIMESTAMP NOT NULL
);

CREATE TABLE knowledge_base_articles (
    knowledge_base_article_id INTEGER PRIMARY KEY,
    title VARCHAR(200) NOT NULL,
    body TEXT NOT NULL,
    product_category_id INTEGER REFERENCES product_categories (product_category_id),
    author_employee_id INTEGER REFERENCES employees (employee_id),
    published_at TIMESTAMP,
    view_count INTEGER NOT NULL DEFAULT 0
);

-- ─── views ─────────────────────────────────────────────────────────────────────
CREATE VIEW v_monthly_revenue AS
SELECT strftime('%Y-%m', o.ordered_at) AS revenue_month,
       c.currency_code,
       count(*) AS order_count,
       sum(o.total_amount) AS gross_revenue,
       sum(o.tax_amount) AS tax_collected
FROM orders AS o
JOIN currencies AS c ON c.currency_id = o.currency_id
WHERE o.status NOT IN ('cancelled', 'failed')
GROUP BY revenue_month, c.currency_code;

CREATE VIEW v_open_tickets AS
SELECT t.support_ticket_id,
       t.subject,
       t.priority,
       t.status,
       t.opened_at,
       c.email AS customer_email,
       e.work_email AS assignee_email,
       p.resolution_minutes AS sla_resolution_minutes
FROM support_tickets AS t
JOIN customers AS c ON c.customer_id = t.customer_id
LEFT JOIN employees AS e ON e.employee_id = t.assigned_employee_id
LEFT JOIN sla_policies AS p ON p.sla_policy_id = t.sla_policy_id
WHERE t.resolved_at IS NULL;

CREATE VIEW v_stock_below_reorder_point AS
SELECT w.warehouse_code,
       p.sku,
       p.product_name,
       s.quantity_on_hand,
       s.quantity_reserved,
       s.reorder_point
FROM stock_levels AS s
JOIN warehouses AS w ON w.warehouse_id = s.warehouse_id
JOIN products AS p ON p.product_id = s.product_id
WHERE s.quantity_on_hand - s.quantity_reserved < s.reorder_point;

CREATE VIEW v_customer_lifetime_value AS
SELECT c.customer_id,
       c.email,
       count(o.order_id) AS order_count,
       coalesce(sum(o.total_amount), 0) AS lifetime_revenue,
       min(o.ordered_at) AS first_order_at,
       max(o.ordered_at) AS last_order_at
FROM customers AS c
LEFT JOIN orders AS o ON o.customer_id = c.customer_id
GROUP BY c.customer_id, c.email;

-- ─── a few reference rows ──────────────────────────────────────────────────────
INSERT INTO currencies (currency_id, currency_code, currency_name, symbol, decimal_places) VALUES
    (1, 'EUR', 'Euro', '€', 2),
    (2, 'USD', 'US Dollar', '$', 2),
    (3, 'GBP', 'Pound Sterling', '£', 2),
    (4, 'SEK', 'Swedish Krona', 'kr', 2);

INSERT INTO countries (country_id, iso_code, country_name, region_name, default_currency_id) VALUES
    (1, 'DE', 'Germany', 'EMEA', 1),
    (2, 'FR', 'France', 'EMEA', 1),
    (3, 'US', 'United States', 'Americas', 2),
    (4, 'GB', 'United Kingdom', 'EMEA', 3),
    (5, 'SE', 'Sweden', 'EMEA', 4);

INSERT INTO sales_channels (sales_channel_id, channel_name, is_online, commission_percent) VALUES
    (1, 'web shop', 1, NULL),
    (2, 'mobile app', 1, NULL),
    (3, 'marketplace', 1, 12.50),
    (4, 'retail store', 0, NULL);

INSERT INTO carriers (carrier_id, carrier_name, service_level, tracking_url_template, is_active) VALUES
    (1, 'DHL', 'express', 'https://www.dhl.com/track?id={tracking_number}', 1),
    (2, 'UPS', 'standard', 'https://www.ups.com/track?tracknum={tracking_number}', 1),
    (3, 'PostNord', 'economy', NULL, 1);

INSERT INTO sla_policies (sla_policy_id, policy_name, priority, first_response_minutes, resolution_minutes,
                          business_hours_only) VALUES
    (1, 'urgent', 'P1', 30, 240, 0),
    (2, 'standard', 'P2', 240, 2880, 1),
    (3, 'low', 'P3', 1440, 10080, 1);
