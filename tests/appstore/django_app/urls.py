from django.urls import path

from django_app import views

urlpatterns = [
    path("apps/", views.app_list),
    path("apps/<str:app_id>/", views.app_detail),
    path("instances/", views.instances),
    path("instances/<str:sid>/", views.instance),
]
