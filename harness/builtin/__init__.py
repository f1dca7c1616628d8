"""The built-in plugins: the cpu backend, the baseline method, the mlp/cnn/logreg/theta models and
the digits/synthetic/quadratic datasets. They are written against the plugin contract like any
third-party plugin and registered through the same hooks (``hooks``)."""
