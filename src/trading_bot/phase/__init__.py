"""The phase ladder: experience → proof → trial → scaling, with gates, triggers and an audit trail."""
