"""operations: the AWS stack and the cost table."""
