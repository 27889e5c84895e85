"""Development tools that ship with a checkout, never in the installed package.

``emulators`` starts moto, Azurite, fake-gcs-server and an MLflow server on 127.0.0.1 (the test
fixtures and ``make run-emulated`` use it); ``run_emulated`` is the demo on them. They need the
``dev`` extras (moto, the GCS emulator's wrapper); ``lakehouse run-emulated`` imports them only
when it runs and says in one line what is missing.
"""
