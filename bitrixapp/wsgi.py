import os

from django.core.wsgi import get_wsgi_application

from integration.core.log import settings_source_log

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitrixapp.settings")

application = get_wsgi_application()
settings_source_log(role="web")
