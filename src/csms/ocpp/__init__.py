"""OCPP gateway pieces shared by the 1.6J and 2.0.1 routes."""
