DROP INDEX deliveries_endpoint_errors;
DROP TABLE dashboard_sessions;
