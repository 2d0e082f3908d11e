"""AWS mode: the parts built from a Lambda function's environment, and the Lambda entry points."""
